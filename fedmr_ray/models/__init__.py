"""Models by name: each factory takes (num_classes, input_shape) and returns an nn.Module whose
forward gives logits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedmr_ray.models.mlp import mlp
from fedmr_ray.rng import Stream, torch_seed

MODELS: dict[str, Callable[[int, tuple[int, ...]], nn.Module]] = {"mlp": mlp}


@dataclass(frozen=True)
class ModelSpec:
    """Everything an executor needs to build the model it trains."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]

    def build(self) -> nn.Module:
        return MODELS[self.name](self.num_classes, self.input_shape)


def entry_names(spec: ModelSpec) -> list[str]:
    """The state-dict entries (parameters and buffers) in order: what FedMR recombines."""
    with torch.device("meta"):
        return list(spec.build().state_dict().keys())


def initial_state(spec: ModelSpec, seed: int, index: int = 0) -> list[np.ndarray]:
    """The state entries of a freshly initialised model, seeded by (seed, index)."""
    torch.manual_seed(torch_seed(seed, Stream.INIT, index))
    return [t.detach().cpu().numpy().copy() for t in spec.build().state_dict().values()]
