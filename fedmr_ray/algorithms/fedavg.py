"""FedAvg (McMahan et al., 2017): one global model, replaced by the data-size-weighted mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import ServerStep, size_weights


@dataclass(frozen=True)
class FedAvg:
    def num_server_models(self, cohort_size: int) -> int:
        return 1

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        return ServerStep(weights=size_weights(sizes), copies=1)

    def global_weights(self, sizes: np.ndarray) -> np.ndarray:
        return size_weights(sizes)
