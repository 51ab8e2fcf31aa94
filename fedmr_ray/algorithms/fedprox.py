"""FedProx (Li et al., 2020): FedAvg whose clients minimise cross-entropy + (mu/2)||w - w_global||^2
over the parameters, w_global being the model the client received."""

from __future__ import annotations

import torch

from fedmr_ray.algorithms.base import LocalRule
from fedmr_ray.algorithms.fedavg import FedAvg

DEFAULT_MU = 0.01  # the reference's prox_alpha


class ProximalRule(LocalRule):
    def __init__(self, mu: float):
        self.mu = mu

    def grads(self, run, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        # the gradient of (mu/2)||w - w_global||^2 is mu (w - w_global)
        pull = torch._foreach_sub([p.detach() for p in run.params], run.start_params)
        return torch._foreach_add(grads, pull, alpha=self.mu)


class FedProx(FedAvg):
    def __init__(self, mu: float):
        self.local = ProximalRule(mu)


def make(ctx) -> FedProx:
    mu = ctx.config.algorithm.mu
    return FedProx(DEFAULT_MU if mu is None else mu)
