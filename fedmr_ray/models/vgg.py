"""The reference's VGG-16s (HMHelloWorld/FedMR models/Nets.py), chosen by the input's size as the
reference chooses by dataset (`--model vgg`: VGG16 on CIFAR, VGG16_mnist on the 28x28 datasets).

VGG16, for 32x32 images: 13 x (conv 3x3 + BatchNorm + ReLU) with five max-pools, then 512 -> 4096
-> 4096 -> classes, ReLU and dropout (p = 0.5) after each hidden layer; five pools leave 512 x 1 x 1.

VGG16_mnist, for 1x28x28 images, despite its name five convolutions and no BatchNorm: conv 1->64
1x1 with padding 1 (28 -> 30), conv 64->64 3x3, max-pool 2 of stride 1, conv 64->128 3x3, max-pool
2 of stride 1, conv 128->256 3x3, conv 256->512 3x3, max-pool 2 (28 -> 14), adaptive average pool
to 7x7, linear 25088 -> 256 and, with no ReLU between, linear 256 -> classes; ReLU after each conv.
The modules sit where the reference's do, so the state dict's entries are its own.
"""

from __future__ import annotations

import torch
from torch import nn

from fedmr_ray.models.shapes import require_image

POOL = 0
LAYOUT = (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL)


class VGG16(nn.Module):
    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        for width in LAYOUT:
            if width == POOL:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers += [nn.Conv2d(in_channels, width, kernel_size=3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
        )
        self.fc = nn.Linear(4096, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.classifier(torch.flatten(self.features(x), 1)))


class VGG16Mnist(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=1, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1),
            nn.Conv2d(64, 128, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=1),
            nn.Conv2d(128, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 512, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(),
            nn.Linear(512 * 7 * 7, 256),
        )
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def vgg16(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    channels, side, _ = require_image("vgg16", input_shape, "32x32 images (cifar) or 1x28x28 ones (femnist, mnist, "
                                      "fmnist)", lambda c, h, w: (h, w) == (32, 32) or (c, h, w) == (1, 28, 28))
    return VGG16(channels, num_classes) if side == 32 else VGG16Mnist(num_classes)
