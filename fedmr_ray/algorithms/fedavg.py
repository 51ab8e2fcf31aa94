"""FedAvg (McMahan et al., 2017): one global model, replaced by the data-size-weighted mean."""

from __future__ import annotations

import numpy as np

from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext, ServerStep, size_weights


class FedAvg(Algorithm):
    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        return ServerStep(weights=size_weights(sizes))

    def global_weights(self, sizes: np.ndarray) -> None:
        return None  # the server's model


def make(ctx: AlgorithmContext) -> FedAvg:
    return FedAvg()
