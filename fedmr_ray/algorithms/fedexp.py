"""FedExP (Jhunjhunwala et al., ICLR 2023, "FedExP: Speeding Up Federated Averaging via
Extrapolation"), as the FedMR reference's Algorithm/Training_FedExP.py runs it: one model; the
clients' updates d_i = trained_i - start are averaged by sample count (d), and the server moves
along it by a step eta >= 1:

    eta = max(1, 0.5 x sum_i w_i ||d_i||^2 / (||d||^2 + 0.1 x K)),   next = start + eta x d

with w_i the cohort's sample shares and the norms over the parameters (the step moves every
entry, buffers too, as the reference's). The model evaluated is the mean of the last two
(from the second round on), as the reference tests `w_vec_avg`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext, ServerStep, Statistics, size_weights

EPSILON = 0.1  # per client of the round: the reference's `m * 0.1` beside ||d||^2


def update_norms(models: Sequence[Sequence[np.ndarray]], entries: Sequence[int], weights: Sequence[float]
                 ) -> np.ndarray:
    """[sum_i weights[i] ||d_i||^2, ||sum_i weights[i] d_i||^2] over `entries`, in float64, where
    models = [start, trained_0, trained_1, ...] and d_i = trained_i - start."""
    start, trained = models[0], models[1:]
    spread = 0.0
    mean = [np.zeros(np.shape(start[e])) for e in entries]
    for weight, model in zip(weights, trained, strict=True):
        for total, e in zip(mean, entries):
            delta = model[e].astype(np.float64) - start[e]
            spread += float(weight) * float(np.vdot(delta, delta))
            total += float(weight) * delta
    return np.array([spread, sum(float(np.vdot(total, total)) for total in mean)])


def server_lr(stats: np.ndarray, clients: int) -> float:
    """eta: the extrapolation step, at least 1 (FedAvg's)."""
    spread, mean = stats
    return max(1.0, 0.5 * spread / (mean + EPSILON * clients))


@dataclass(frozen=True)
class FedExP(Algorithm):
    params: tuple[int, ...]  # the entries the norms are taken over

    def statistics(self, round_index: int, sizes: np.ndarray) -> Statistics:
        return Statistics(update_norms, {"entries": self.params, "weights": size_weights(sizes)})

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator,
                    stats: np.ndarray | None = None) -> ServerStep:
        eta, weights = server_lr(stats, len(sizes)), size_weights(sizes)
        # from the second round, the mean of this round's model and the last: the start
        evaluated = None if round_index == 0 else (1.0 - eta / 2, eta / 2 * weights)
        return ServerStep(weights=eta * weights, keep=1.0 - eta, evaluated=evaluated)

    def global_weights(self, sizes: np.ndarray) -> None:
        return None  # the server's model (the first round's), else ServerStep.evaluated


def make(ctx: AlgorithmContext) -> FedExP:
    return FedExP(ctx.info.param_entries)
