"""SCAFFOLD (Karimireddy et al., 2020), option II.

A client corrects every gradient by c - c_i (server and client control variates), then, after
its K local steps, sets c_i+ = c_i - c + (x - y_i) / (K lr). The server moves the model by
server_lr times the mean update, x <- x + server_lr mean_i (y_i - x), and the control variate by
c <- c + (1/N) sum_i (c_i+ - c_i), N being the number of clients. As in the reference
(LocalUpdate_Scaffold), local steps clip the corrected gradient to norm 10 and use weight decay
1e-5. Control variates are kept per state entry, zero for buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext, ServerStep, StateUpdate, uniform_weights
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting
from fedmr_ray.train.hooks import LocalRule

CLIP_NORM = 10.0
WEIGHT_DECAY = 1e-5


@dataclass(frozen=True)
class Settings(Base):
    server_lr: float = setting(1.0, "SCAFFOLD: the server's step size.", check=lambda v: v > 0, must="> 0")


class ControlVariateRule(LocalRule):
    server_state = ("control",)
    client_state = ("control",)
    client_reads = ("control",)

    def __init__(self, param_entries: tuple[int, ...]):
        self.param_entries = param_entries

    def _own(self, run) -> list[torch.Tensor]:
        own = run.client.get("control")
        return [own[e] for e in self.param_entries] if own else [torch.zeros_like(p) for p in run.start_params]

    def start(self, run) -> None:
        server = [run.server["control"][e] for e in self.param_entries]
        run.scratch["correction"] = torch._foreach_sub(server, self._own(run))

    def grads(self, run, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        grads = torch._foreach_add(grads, run.scratch["correction"])
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = torch.clamp(CLIP_NORM / (norm + 1e-6), max=1.0)  # torch.nn.utils.clip_grad_norm_
        torch._foreach_mul_(grads, scale)
        return torch._foreach_add(grads, [p.detach() for p in run.params], alpha=WEIGHT_DECAY)

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

    def initial_server_state(self) -> dict[str, list[np.ndarray]]:
        return {"control": list(self.initial_control)}

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        k = len(sizes)
        return ServerStep(
            weights=self.server_lr * uniform_weights(k), keep=1.0 - self.server_lr,
            state={"control": StateUpdate(keep=1.0, after=np.full(k, 1.0 / self.num_clients),
                                          before=np.full(k, -1.0 / self.num_clients))})

    def global_weights(self, sizes: np.ndarray) -> None:
        return None  # the server's model


def make(ctx: AlgorithmContext) -> Scaffold:
    info = ctx.info
    params = tuple(e for e, is_param in enumerate(info.is_param) if is_param)
    return Scaffold(len(ctx.client_sizes), ctx.settings.server_lr, tuple(info.zeros()), ControlVariateRule(params))
