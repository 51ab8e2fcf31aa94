"""FedMut (Hu et al., AAAI 2024, "FedMut: Generalized Federated Learning via Stochastic
Mutation"), as the FedMR reference's Algorithm/Training_FedMut.py runs it: K models, model j
trained on the j-th sampled client; the global model g is their unweighted mean; the next round's
K models are mutated around it along the last global step, entry by entry:

    model j's entry e = g[e] + radius x c[j, e] x (g[e] - g_before[e])

where, per entry, the K models are paired at random (K odd: the last model is g itself) and each
pair gets 1 and rate - 1 in random order, rate = mut_acc_rate x (1 - min(round / mut_bound, 1)).
Its random numbers come from the run's seed (the reference's from Python's `random`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext, Mutation, ServerStep, uniform_weights
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting


@dataclass(frozen=True)
class Settings(Base):
    radius: float = setting(5.0, "FedMut: the mutation radius (the reference's --radius): how far along the last "
                            "global step the models are spread.", check=lambda v: v >= 0, must="a number >= 0")
    mut_acc_rate: float = setting(0.3, "FedMut: the mutation's acceleration rate at round 0 (the reference's "
                                  "--mut_acc_rate): a pair's coefficients are 1 and rate - 1.",
                                  check=lambda v: 0 <= v <= 1, must="a number in [0, 1]")
    mut_bound: int = setting(100, "FedMut: the round from which the acceleration rate is 0 (the reference's "
                             "--mut_bound); it falls linearly before.", check=lambda v: v >= 1, must="an integer >= 1")


def coefficients(rng: np.random.Generator, models: int, entries: int, rate: float) -> np.ndarray:
    """c[j, e] as the reference's mutation_spread draws them: per entry, floor(K / 2) pairs, each
    (1, rate - 1) or (rate - 1, 1) with probability 1/2, the list shuffled; the last model of an
    odd K gets 0 (it stays the global model)."""
    pairs = models // 2
    out = np.zeros((models, entries))
    for e in range(entries):
        first = rng.random(pairs) > 0.5
        values = np.stack([np.where(first, 1.0, rate - 1.0), np.where(first, rate - 1.0, 1.0)], axis=1).ravel()
        out[:2 * pairs, e] = rng.permutation(values)
    return out


@dataclass(frozen=True)
class FedMut(Algorithm):
    entries: int
    radius: float = 5.0
    mut_acc_rate: float = 0.3
    mut_bound: int = 100

    def num_server_models(self, cohort_size: int) -> int:
        return cohort_size

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        k = len(sizes)
        rate = self.mut_acc_rate * (1.0 - min(round_index / self.mut_bound, 1.0))
        return ServerStep(weights=uniform_weights(k),
                          mutation=Mutation(coefficients(rng, k, self.entries, rate), self.radius))

    def global_weights(self, sizes: np.ndarray) -> np.ndarray:
        return uniform_weights(len(sizes))


def make(ctx: AlgorithmContext) -> FedMut:
    s = ctx.settings
    return FedMut(len(ctx.info.names), s.radius, s.mut_acc_rate, s.mut_bound)
