"""The reference's small CNNs (HMHelloWorld/FedMR models/Nets.py): CNNCifar, here for any image
size, and CNNFashionMnist, which the reference trains on FEMNIST."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedmr_ray.models.shapes import require_image


def _after_convs(side: int) -> int:
    """A side after conv 5x5, max-pool 2, conv 5x5, max-pool 2 (no padding)."""
    return ((side - 4) // 2 - 4) // 2


class CNN(nn.Module):
    """conv C->6 5x5, max-pool, conv 6->16 5x5, max-pool, FC 16*h*w -> 120 -> 84 -> classes, ReLU
    between: the reference's CNNCifar (FC 400 -> ... on 3x32x32; 256 -> ... on 1x28x28)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * _after_convs(height) * _after_convs(width), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class FemnistCNN(nn.Module):
    """conv 1->16 5x5, max-pool, ReLU, conv 16->32 5x5, max-pool, ReLU, FC 512 -> 256 -> classes:
    the reference's CNNFashionMnist (its Dropout2d is declared but never applied, so not here)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.pool = nn.MaxPool2d(2)  # the reference's F.max_pool2d(x, 2), as a module: see models/maxpool.py
        self.fc1 = nn.Linear(512, 256)
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def cnn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    require_image("cnn", input_shape, "images of at least 16x16 pixels", lambda c, h, w: min(h, w) >= 16)
    return CNN(input_shape, num_classes)


def cnn_femnist(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    require_image("cnn-femnist", input_shape, "1x28x28 images (femnist, mnist, fmnist)",
                  lambda c, h, w: (c, h, w) == (1, 28, 28))
    return FemnistCNN(num_classes)
