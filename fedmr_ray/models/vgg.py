"""VGG-16 with BatchNorm as the reference's VGG16 (HMHelloWorld/FedMR models/Nets.py): 13 x (conv
3x3 + BatchNorm + ReLU) with five max-pools, then 512 -> 4096 -> 4096 -> classes, ReLU and dropout
(p = 0.5) after each hidden layer. For 32x32 images: five pools leave 512 x 1 x 1."""

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


def vgg16(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    channels, _, _ = require_image("vgg16", input_shape, "32x32 images (cifar)", lambda c, h, w: (h, w) == (32, 32))
    return VGG16(channels, num_classes)
