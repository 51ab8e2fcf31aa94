"""ResNet-20 as the reference builds it (HMHelloWorld/FedMR models/Nets.py, ResNet20_cifar and
ResNet20_mnist): pre-activation bottleneck blocks (BN-ReLU-conv x 3, expansion 4), a 3x3 stem
conv without BN, three stages of two blocks (widths 16, 32, 64), 1x1-conv shortcuts without BN,
average pooling and one linear layer (256 -> classes). On 28x28 inputs the stem is followed by a
3x3 max-pool of stride 1, as the reference's MNIST variant. Initialised as the reference: convs
N(0, 2 / (k x k x out_channels)), BatchNorm weights 0.5 and biases 0.

Like the reference's, it declares a BatchNorm2d(256) after the last stage that its forward never
applies (`bn`): its five entries are in the state dict where the reference has them (before `fc`),
so the model has the reference's 219,482 parameters and its entries (what FedMR recombines and
the `block:P` granularity cuts) are the reference's. They get a zero gradient (train/steps.py's
`gradients`) and enter no output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fedmr_ray.models.shapes import require_image

EXPANSION = 4
STAGES = ((16, 1), (32, 2), (64, 2))  # (width, stride) of each stage
BLOCKS_PER_STAGE = 2


class Bottleneck(nn.Module):
    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * EXPANSION
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut = (nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
                         if stride != 1 or in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + residual


class ResNet20(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        channels, side, _ = input_shape
        self.conv1 = nn.Conv2d(channels, 16, kernel_size=3, padding=1, bias=False)
        self.stem_pool = nn.MaxPool2d(3, stride=1, padding=1) if side == 28 else nn.Identity()
        stages, in_channels = [], 16
        for width, stride in STAGES:
            blocks = []
            for block in range(BLOCKS_PER_STAGE):
                blocks.append(Bottleneck(in_channels, width, stride if block == 0 else 1))
                in_channels = width * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_channels)  # declared, never applied: the reference's
        self.avgpool = nn.AvgPool2d(side // 4)
        self.fc = nn.Linear(in_channels, num_classes)
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 0.5)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_pool(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet20(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    require_image("resnet20", input_shape, "32x32 images (cifar) or 28x28 ones (femnist, mnist, fmnist)",
                  lambda c, h, w: h == w and h in (28, 32))
    return ResNet20(input_shape, num_classes)
