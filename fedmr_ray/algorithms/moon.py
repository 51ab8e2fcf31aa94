"""MOON (Li et al., CVPR 2021): FedAvg whose clients add a model-contrastive loss.

For a batch, z is the local model's representation (the input of its last linear layer), z_glob
the global model's (the model the client received) and z_prev the client's previous local
model's; the loss adds mu x cross-entropy of [cos(z, z_glob), cos(z, z_prev)] / temperature
with the first as the target, as the reference's LocalUpdate_Moon. A client that has not trained
before takes the global model as its previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fedmr_ray.algorithms.base import AlgorithmContext
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting
from fedmr_ray.train.hooks import LocalRule


@dataclass(frozen=True)
class Settings(Base):
    mu: float = setting(5.0, "MOON: weight of the contrastive loss.", check=lambda v: v >= 0, must=">= 0")
    temperature: float = setting(0.5, "MOON: temperature of the contrastive loss.", check=lambda v: v > 0,
                                 must="> 0")


class ContrastiveRule(LocalRule):
    client_state = ("previous",)
    client_reads = ("previous",)
    representation = True

    def __init__(self, mu: float, temperature: float):
        self.mu, self.temperature = mu, temperature

    def start(self, run) -> None:
        global_model = run.frozen_model(run.start_entries)
        previous = run.client.get("previous")
        run.scratch["anchors"] = (global_model, run.frozen_model(previous) if previous else global_model)

    def loss(self, run, x, y, logits, representation) -> torch.Tensor:
        global_model, previous = run.scratch["anchors"]
        with torch.no_grad():
            positive = run.representation_of(global_model, x)
            negative = run.representation_of(previous, x)
        similarities = torch.stack([F.cosine_similarity(representation, positive, dim=-1),
                                    F.cosine_similarity(representation, negative, dim=-1)], dim=1)
        target = torch.zeros(len(x), dtype=torch.long, device=x.device)
        return self.mu * F.cross_entropy(similarities / self.temperature, target)

    def finish(self, run) -> dict[str, list[np.ndarray]]:
        return {"previous": run.state()}


class Moon(FedAvg):
    def __init__(self, mu: float, temperature: float):
        self.local = ContrastiveRule(mu, temperature)


def make(ctx: AlgorithmContext) -> Moon:
    return Moon(ctx.settings.mu, ctx.settings.temperature)
