"""Federated algorithms: pure server-side logic over lists of entries and client-side rules in
plain torch; no Ray here. Adding one is a module with a `make(ctx)` and a line in ALGORITHMS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms import clusamp, fedavg, fedgen, fedindep, fedmr, fedprox, moon, scaffold
from fedmr_ray.algorithms.base import (
    SUM_CHUNK,
    Algorithm,
    LocalRule,
    Sampling,
    ServerStep,
    ServerTask,
    StateUpdate,
    finish_sum,
    partial_sum,
    size_weights,
    uniform_weights,
    weighted_sum,
)
from fedmr_ray.config import SimulationConfig
from fedmr_ray.models.info import ModelInfo

__all__ = ["ALGORITHMS", "SUM_CHUNK", "finish_sum", "partial_sum", "Algorithm", "AlgorithmContext", "LocalRule", "Sampling", "ServerStep", "ServerTask",
           "StateUpdate", "make_algorithm", "size_weights", "uniform_weights", "weighted_sum"]


@dataclass(frozen=True)
class AlgorithmContext:
    """What an algorithm may know when it is built: the configuration, the model's layout, the
    clients' sizes, and their label counts (FedGen's server weighs clients by them)."""

    config: SimulationConfig
    info: ModelInfo
    client_sizes: np.ndarray
    num_classes: int
    label_counts: Callable[[np.ndarray], np.ndarray]  # clients -> [clients, classes]


ALGORITHMS: dict[str, Callable[[AlgorithmContext], Algorithm]] = {
    "fedmr": fedmr.make,
    "fedavg": fedavg.make,
    "fedprox": fedprox.make,
    "scaffold": scaffold.make,
    "moon": moon.make,
    "fedgen": fedgen.make,
    "clusamp": clusamp.make,
    "fedindep": fedindep.make,
}


def make_algorithm(ctx: AlgorithmContext) -> Algorithm:
    return ALGORITHMS[ctx.config.algorithm.name](ctx)  # validate() refuses unknown names before this
