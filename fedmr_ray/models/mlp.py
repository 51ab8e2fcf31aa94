from __future__ import annotations

import math

from torch import nn


class MLP(nn.Module):
    """A multilayer perceptron with ReLU hidden layers: the synthetic dataset's default model."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (128, 64)):
        super().__init__()
        widths = (math.prod(input_shape), *hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in zip(widths, widths[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def mlp(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    return MLP(input_shape, num_classes)
