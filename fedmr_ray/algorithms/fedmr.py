"""FedMR (Hu et al., KDD 2024): K models that are recombined entry by entry, never merged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext, ServerStep, uniform_weights
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting
from fedmr_ray.recombine import draw_permutations, entry_groups, parse_granularity


def _granularity(value: str) -> bool:
    return parse_granularity(value) is not None


@dataclass(frozen=True)
class Settings(Base):
    first_stage_bound: int = setting(0, "FedMR: rounds before this one average the K models (stage one); from it on "
                                     "they are recombined.", check=lambda v: v >= 0, must="an integer >= 0")
    granularity: str = setting("tensor", "FedMR: what moves together: tensor (each state entry), layer (each module), "
                               "or block:P (chunks of about P x L entries).", check=_granularity,
                               must="tensor, layer, or block:P with 0 < P <= 1")
    diverse_init: bool = setting(False, "FedMR: give each of the K models its own random initialisation.")


@dataclass(frozen=True)
class FedMR(Algorithm):
    groups: np.ndarray  # entry -> permutation group (see recombine.entry_groups)
    first_stage_bound: int = 0  # rounds before it are stage one: every model reset to the mean
    diverse_init: bool = False  # each model its own initialisation

    def num_server_models(self, cohort_size: int) -> int:
        return cohort_size

    def initialisations(self, count: int) -> list[int]:
        return list(range(count)) if self.diverse_init else [0] * count

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        k = len(sizes)
        if round_index >= self.first_stage_bound:
            return ServerStep(perms=draw_permutations(rng, k, self.groups))
        return ServerStep(weights=uniform_weights(k), copies=k)

    def global_weights(self, sizes: np.ndarray) -> np.ndarray:
        return uniform_weights(len(sizes))


def make(ctx: AlgorithmContext) -> FedMR:
    s = ctx.settings
    return FedMR(entry_groups(ctx.info.names, s.granularity), s.first_stage_bound, s.diverse_init)
