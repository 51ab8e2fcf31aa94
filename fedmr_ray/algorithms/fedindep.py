"""FedIndep (the reference's ablation of FedMR): K models, each trained on one client a round,
neither recombined nor averaged; the global model evaluated is their mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext, ServerStep, uniform_weights


@dataclass(frozen=True)
class FedIndep(Algorithm):
    num_entries: int

    def num_server_models(self, cohort_size: int) -> int:
        return cohort_size

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        # the identity permutation for every entry: model j stays model j
        return ServerStep(perms=np.tile(np.arange(len(sizes)), (self.num_entries, 1)))

    def global_weights(self, sizes: np.ndarray) -> np.ndarray:
        return uniform_weights(len(sizes))


def make(ctx: AlgorithmContext) -> FedIndep:
    return FedIndep(len(ctx.info.names))
