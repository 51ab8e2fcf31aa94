"""What every algorithm shares: the server step it asks the runtime to carry out, and the mean."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ServerStep:
    """What becomes of the K trained models: recombined by `perms` ((L, K), see recombine.py), or
    replaced by `copies` copies of their mean weighted by `weights`."""

    perms: np.ndarray | None = None
    weights: np.ndarray | None = None
    copies: int = 1


class Algorithm(Protocol):
    def num_server_models(self, cohort_size: int) -> int:
        """How many models the server keeps; slot j of a cohort trains model j % that number."""

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        """Given the trained clients' sample counts (slot order), what the server does."""

    def global_weights(self, sizes: np.ndarray) -> np.ndarray:
        """Weights of the trained models in the global model that is evaluated."""


def uniform_weights(count: int) -> np.ndarray:
    return np.full(count, 1.0 / count)


def size_weights(sizes: np.ndarray) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=np.float64)
    return sizes / sizes.sum()


def weighted_mean(entries: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """sum_i weights[i] * entries[i], accumulated in float64 in the given order, in the entries'
    dtype (integer buffers such as BatchNorm's counter are truncated, as torch's copy_ does)."""
    total = np.zeros(entries[0].shape, dtype=np.float64)
    for weight, entry in zip(weights, entries):
        total += float(weight) * entry
    return total.astype(entries[0].dtype)
