"""Layer-wise model recombination (FedMR), as pure functions over lists of entries.

A model is a list of L entries (the state dict's values in order). A recombination is an (L, K)
integer array `perms`: new model j takes entry e from trained model `perms[e, j]`, and each row is
a permutation of range(K). The functions are generic in the entry type, so the Ray runtime
permutes references into the object store and never touches the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def parse_granularity(granularity: str) -> tuple[str, float] | None:
    """'tensor' | 'layer' | 'block:P' (0 < P <= 1) -> (kind, P); None for anything else."""
    if granularity in ("tensor", "layer"):
        return granularity, 0.0
    kind, _, value = granularity.partition(":")
    if kind == "block":
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if 0.0 < p <= 1.0:
            return kind, p
    return None


def entry_groups(names: Sequence[str], granularity: str) -> np.ndarray:
    """Group id per entry: entries of one group share one permutation.

    tensor: every entry alone (the reference's `recombination`). layer: the entries of one module
    (its weight, bias and buffers) together. block:P: the reference's `recombination_partition`:
    a new permutation is drawn at entry i when i >= L * P * (blocks drawn so far).
    """
    parsed = parse_granularity(granularity)
    if parsed is None:
        raise ValueError(f"granularity {granularity!r}: not tensor, layer or block:P with 0 < P <= 1")
    kind, p = parsed
    if kind == "tensor":
        return np.arange(len(names))
    if kind == "layer":
        modules = [name.rpartition(".")[0] for name in names]
        ids: dict[str, int] = {}
        return np.array([ids.setdefault(m, len(ids)) for m in modules])
    groups, blocks = [], 0
    for i in range(len(names)):
        if i >= len(names) * p * blocks:
            blocks += 1
        groups.append(blocks - 1)
    return np.array(groups)


def draw_permutations(rng: np.random.Generator, num_models: int, groups: np.ndarray) -> np.ndarray:
    """An (L, K) array: one independent permutation of range(K) per group, repeated for its entries."""
    per_group = np.stack([rng.permutation(num_models) for _ in range(int(groups.max()) + 1)])
    return per_group[groups]


def recombine(models: Sequence[Sequence[T]], perms: np.ndarray) -> list[list[T]]:
    """new[j][e] = models[perms[e, j]][e]."""
    num_entries, num_models = perms.shape
    return [[models[perms[e, j]][e] for e in range(num_entries)] for j in range(num_models)]
