"""FedASAM (Caldarola et al., ECCV 2022, "Improving Generalization in Federated Learning by
Seeking Flat Minima"), as the FedMR reference's Algorithm/Training_FedASAM.py runs it: FedAvg
whose clients take adaptive sharpness-aware steps (ASAM, Kwon et al. 2021, its
utils/sam_minimizers.py): at each step, with g the batch's gradient at w and T = |w| + eta for
the parameters named "weight" (1 for the others),

    eps = rho x T^2 g / ||T g||,    the step's gradient = that of the batch's loss at w + eps,

then SGD at w (the reference's rho 0.1 and eta 0, fixed in its LocalUpdate_FedASAM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fedmr_ray.algorithms.base import AlgorithmContext
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting
from fedmr_ray.train.hooks import LocalRule
from fedmr_ray.train.steps import gradients


@dataclass(frozen=True)
class Settings(Base):
    rho: float = setting(0.1, "FedASAM: the neighbourhood's radius (the reference's 0.1).", check=lambda v: v > 0,
                         must="> 0")
    eta: float = setting(0.0, "FedASAM: added to |w| in ASAM's scaling (the reference's 0).", check=lambda v: v >= 0,
                         must=">= 0")


class AdaptiveSharpnessRule(LocalRule):
    def __init__(self, rho: float, eta: float):
        self.rho, self.eta = rho, eta

    def loss(self, run, x, y, logits, representation) -> None:
        run.scratch["batch"] = (x, y)  # for the second pass, at w + eps: no term added

    def perturbation(self, run, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """eps, parameter by parameter (ASAM's ascent step)."""
        scales = [p.detach().abs() + self.eta if "weight" in name else None for name, p in run.model.named_parameters()]
        scaled = [g if t is None else g * t for g, t in zip(grads, scales)]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in scaled])) + 1e-16
        return [(s if t is None else s * t) * (self.rho / norm) for s, t in zip(scaled, scales)]

    def grads(self, run, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        x, y = run.scratch.pop("batch")
        params = run.params
        eps = self.perturbation(run, grads)
        with torch.no_grad():
            torch._foreach_add_(params, eps)
        second = gradients(F.cross_entropy(run.model(x), y), params)  # the reference's CrossEntropyLoss
        with torch.no_grad():
            torch._foreach_sub_(params, eps)
        return list(second)


class FedASAM(FedAvg):
    def __init__(self, rho: float, eta: float):
        self.local = AdaptiveSharpnessRule(rho, eta)


def make(ctx: AlgorithmContext) -> FedASAM:
    return FedASAM(ctx.settings.rho, ctx.settings.eta)
