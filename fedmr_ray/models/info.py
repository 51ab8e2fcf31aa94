"""What algorithms need to know of a model's layout, read off a copy built on the meta device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedmr_ray.models import ModelSpec


@dataclass(frozen=True)
class ModelInfo:
    names: tuple[str, ...]  # the state entries in order: what FedMR recombines
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]
    is_param: tuple[bool, ...]  # a parameter (trained) rather than a buffer
    head: str  # the module name of the last linear layer: the classifier
    head_entries: tuple[int, ...]  # the entries of its weight and bias
    representation_dim: int  # its input width: the representation MOON and FedGen work on

    @property
    def param_entries(self) -> tuple[int, ...]:
        """The entries that are parameters."""
        return tuple(e for e, is_param in enumerate(self.is_param) if is_param)

    @property
    def nbytes(self) -> tuple[int, ...]:
        """Each entry's size in bytes."""
        return tuple(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in zip(self.shapes, self.dtypes))

    def zeros(self) -> list[np.ndarray]:
        return [np.zeros(shape, dtype=dtype) for shape, dtype in zip(self.shapes, self.dtypes)]


def model_info(spec: ModelSpec) -> ModelInfo:
    with torch.device("meta"):
        model = spec.build()
    state = model.state_dict()
    params = {name for name, _ in model.named_parameters()}
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"model {spec.name!r} has no linear layer to serve as its classifier")
    head, layer = linears[-1]
    names = list(state)
    return ModelInfo(
        names=tuple(names),
        shapes=tuple(tuple(t.shape) for t in state.values()),
        dtypes=tuple(np.dtype(str(t.dtype).removeprefix("torch.")) for t in state.values()),
        is_param=tuple(name in params for name in names),
        head=head,
        head_entries=tuple(names.index(f"{head}.{p}" if head else p) for p, _ in layer.named_parameters()),
        representation_dim=layer.in_features,
    )
