"""SCAFFOLD (Karimireddy et al., 2020), option II, by default as the reference ran it.

The reference's SCAFFOLD is Scaffold and LocalUpdate_Scaffold in Algorithm/Triaining_Scaffold.py,
which its repository ships only compiled (Algorithm/__pycache__/, imported by its test.py);
models/Update.py's LocalUpdate_Scaffold, with weight decay 1e-5, is not the one it ran.

Every client corrects each gradient by a control-variate term, clips the corrected gradient to
norm 10 (torch's clip_grad_norm_) and, after its K local steps, sets c_i+ = c_i - c + (x - y_i) /
(K lr), over the parameters (buffers have none). `scaffold_variant`:

- reference (the default): the correction is c / w_i - c_i, w_i = n_i / sum(n) x N (n the
  clients' sample counts, N the number of clients, all of them); no weight decay; the server's
  model becomes the sample-weighted mean of the trained ones and c <- c + sum_i (n_i / sum(n))
  (c_i+ - c_i) (the reference's (1/N) sum_i w_i (c_i+ - c_i)).
- paper: the correction is c - c_i, plus weight decay 1e-5 after clipping; the server takes the
  unweighted mean and c <- c + (1/N) sum_i (c_i+ - c_i), as Karimireddy et al.

With clients of equal size the two differ only by the weight decay. In both, server_lr moves the
server's model that fraction of the way to the mean (1: the mean itself; the reference has no
server step size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedmr_ray.algorithms.base import (Algorithm, AlgorithmContext, ServerStep, StateUpdate, size_weights,
                                      uniform_weights)
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting
from fedmr_ray.train.hooks import LocalRule

CLIP_NORM = 10.0
WEIGHT_DECAY = 1e-5  # the paper variant's
VARIANTS = ("reference", "paper")


@dataclass(frozen=True)
class Settings(Base):
    server_lr: float = setting(1.0, "SCAFFOLD: the server's step size.", check=lambda v: v > 0, must="> 0")
    scaffold_variant: str = setting(
        "reference", "SCAFFOLD: reference (as the reference ran it: correction c / w_i - c_i with w_i = n_i / "
        "sum(n) x clients, no weight decay, sample-weighted model and control-variate updates) or paper "
        "(Karimireddy et al.: correction c - c_i, weight decay 1e-5, unweighted means).",
        check=lambda v: v in VARIANTS, must="reference or paper")


class ControlVariateRule(LocalRule):
    """`total` and `clients`: sum(n) and N, by which the reference divides the server's variate
    (c / w_i, w_i = n_i / sum(n) x N); None for the paper's c. `weight_decay` is added to the
    clipped gradient."""

    server_state = ("control",)
    client_state = ("control",)
    client_reads = ("control",)

    def __init__(self, param_entries: tuple[int, ...], total: float | None = None, clients: int = 0,
                 weight_decay: float = 0.0):
        self.param_entries, self.total, self.clients, self.weight_decay = param_entries, total, clients, weight_decay

    def _own(self, run) -> list[torch.Tensor]:
        own = run.client.get("control")
        return [own[e] for e in self.param_entries] if own else [torch.zeros_like(p) for p in run.start_params]

    def start(self, run) -> None:
        server = [run.server["control"][e] for e in self.param_entries]
        if self.total is not None:
            server = torch._foreach_div(server, run.samples / self.total * self.clients)
        run.scratch["correction"] = torch._foreach_sub(server, self._own(run))

    def grads(self, run, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        grads = torch._foreach_add(grads, run.scratch["correction"])
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = torch.clamp(CLIP_NORM / (norm + 1e-6), max=1.0)  # torch.nn.utils.clip_grad_norm_
        torch._foreach_mul_(grads, scale)
        if self.weight_decay:
            grads = torch._foreach_add(grads, [p.detach() for p in run.params], alpha=self.weight_decay)
        return grads

    def finish(self, run) -> dict[str, list[np.ndarray]]:
        own, server = self._own(run), [run.server["control"][e] for e in self.param_entries]
        steps_lr = max(run.steps, 1) * run.config.lr
        control = run.info.zeros()
        for e, c_i, c, x, y in zip(self.param_entries, own, server, run.start_params, run.params):
            control[e] = (c_i - c + (x - y.detach()) / steps_lr).cpu().numpy()
        return {"control": control}


@dataclass(frozen=True)
class Scaffold(Algorithm):
    num_clients: int
    server_lr: float
    initial_control: tuple[np.ndarray, ...]
    local: ControlVariateRule
    total_size: float | None = None  # sum(n) over every client: the reference's weights; None: the paper's

    def initial_server_state(self) -> dict[str, list[np.ndarray]]:
        return {"control": list(self.initial_control)}

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        k = len(sizes)
        if self.total_size is None:
            mean, control = uniform_weights(k), np.full(k, 1.0 / self.num_clients)
        else:
            mean, control = size_weights(sizes), np.asarray(sizes, dtype=np.float64) / self.total_size
        return ServerStep(weights=self.server_lr * mean, keep=1.0 - self.server_lr,
                          state={"control": StateUpdate(keep=1.0, after=control, before=-control)})

    def global_weights(self, sizes: np.ndarray) -> None:
        return None  # the server's model


def make(ctx: AlgorithmContext) -> Scaffold:
    info, settings = ctx.info, ctx.settings
    params = info.param_entries
    clients = len(ctx.client_sizes)
    if settings.scaffold_variant == "paper":
        total, rule = None, ControlVariateRule(params, weight_decay=WEIGHT_DECAY)
    else:
        total = float(np.sum(ctx.client_sizes, dtype=np.float64))
        rule = ControlVariateRule(params, total, clients)
    return Scaffold(clients, settings.server_lr, tuple(info.zeros()), rule, total)
