"""The reference's small CNNs (HMHelloWorld/FedMR models/Nets.py): CNNCifar, here for any image
size, CNNFashionMnist, which the reference trains on FEMNIST, and CNNMnist, which it trains on
MNIST."""

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


class PoolFirstCNN(nn.Module):
    """conv 1->a 5x5, max-pool, ReLU, conv a->b 5x5, max-pool, ReLU, FC 16b -> hidden -> classes, on
    1x28x28 images: the reference's CNNFashionMnist (a, b, hidden = 16, 32, 256; its Dropout2d is
    declared but never applied, so not here), which it trains on FEMNIST, and its CNNMnist (20, 50,
    50), which it trains on MNIST."""

    def __init__(self, num_classes: int, channels: tuple[int, int], hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], kernel_size=5)
        self.conv2 = nn.Conv2d(channels[0], channels[1], kernel_size=5)
        self.pool = nn.MaxPool2d(2)  # the reference's F.max_pool2d(x, 2), as a module: see models/maxpool.py
        self.fc1 = nn.Linear(16 * channels[1], hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.pool(self.conv1(x)))
        x = F.relu(self.pool(self.conv2(x)))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def cnn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    require_image("cnn", input_shape, "images of at least 16x16 pixels", lambda c, h, w: min(h, w) >= 16)
    return CNN(input_shape, num_classes)


def _pool_first(name: str, channels: tuple[int, int], hidden: int):
    def factory(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        require_image(name, input_shape, "1x28x28 images (femnist, mnist, fmnist)",
                      lambda c, h, w: (c, h, w) == (1, 28, 28))
        return PoolFirstCNN(num_classes, channels, hidden)
    return factory


cnn_femnist = _pool_first("cnn-femnist", (16, 32), 256)
cnn_mnist = _pool_first("cnn-mnist", (20, 50), 50)
