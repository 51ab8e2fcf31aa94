"""FedProx (Li et al., 2020): FedAvg whose clients minimise cross-entropy + (mu/2)||w - w_global||^2
over the parameters, w_global being the model the client received."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedmr_ray.algorithms.base import AlgorithmContext
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting
from fedmr_ray.train.hooks import LocalRule


@dataclass(frozen=True)
class Settings(Base):
    mu: float = setting(0.01, "FedProx: weight of the proximal term (the reference's prox_alpha).",
                        check=lambda v: v >= 0, must=">= 0")


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


def make(ctx: AlgorithmContext) -> FedProx:
    return FedProx(ctx.settings.mu)
