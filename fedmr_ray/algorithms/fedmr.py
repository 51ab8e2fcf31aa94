"""FedMR (Hu et al., KDD 2024): K models that are recombined entry by entry, never merged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import Algorithm, ServerStep, uniform_weights
from fedmr_ray.recombine import draw_permutations, entry_groups


@dataclass(frozen=True)
class FedMR(Algorithm):
    groups: np.ndarray  # entry -> permutation group (see recombine.entry_groups)
    first_stage_bound: int = 0  # rounds before it are stage one: every model reset to the mean

    def num_server_models(self, cohort_size: int) -> int:
        return cohort_size

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        k = len(sizes)
        if round_index >= self.first_stage_bound:
            return ServerStep(perms=draw_permutations(rng, k, self.groups))
        return ServerStep(weights=uniform_weights(k), copies=k)

    def global_weights(self, sizes: np.ndarray) -> np.ndarray:
        return uniform_weights(len(sizes))


def make(ctx) -> FedMR:
    a = ctx.config.algorithm
    return FedMR(entry_groups(ctx.info.names, a.granularity), a.first_stage_bound)
