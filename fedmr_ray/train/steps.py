"""The pieces of local training, in plain PyTorch: a job and its result, the local loss, the SGD
update, a forward pass that also gives the classifier's input."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from fedmr_ray.config import TrainConfig

Entries = list[np.ndarray]


@dataclass(frozen=True)
class TrainJob:
    slot: int  # position in the round's cohort: which server model it trains and returns
    client: int
    round: int


@dataclass(frozen=True)
class ClientResult:
    client: int
    num_samples: int
    loss: float  # mean cross-entropy over the local steps (an algorithm's extra terms excluded)
    steps: int = 0  # local SGD steps
    # how it ran, not what it computed (left out of comparisons): wall time from its first step to
    # its last (shared with others where vectorised), and who trained it (an executor's name on
    # Ray, "serial" in the serial backend)
    seconds: float = field(default=0.0, compare=False)
    executor: str = field(default="", compare=False)


@dataclass
class Trained:
    entries: Entries
    result: ClientResult
    state: dict[str, Entries] = field(default_factory=dict)  # the client's new state (LocalRule)


def as_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor over an array, read-only ones from the object store included (torch only reads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(array)).to(device)


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The local loss: sum over the batch of weight x cross-entropy, the weights 1/(samples) on a
    batch's samples and 0 on padding, so the mean over the real samples, as the reference's."""
    return (F.cross_entropy(logits, target, reduction="none") * weights).sum()


def gradients(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """d loss / d params, zero for a parameter the loss does not reach (the reference's ResNet-20
    declares a BatchNorm that its forward never applies): no step moves it then, as torch's optimizer
    skips a parameter without a gradient (weight decay aside, which shrinks it; it enters no output)."""
    return torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)


def sgd_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], buffers: Sequence[torch.Tensor],
             cfg: TrainConfig) -> None:
    """One step of torch.optim.SGD (momentum, weight decay; no dampening or Nesterov), the same
    arithmetic in three fused list ops instead of the optimizer's per-parameter Python loop: for a
    small model that loop is a large share of the training time. Momentum buffers start at zero
    (0 * momentum + grad is the first gradient exactly, as torch's clone of it)."""
    with torch.no_grad():
        if cfg.weight_decay:
            grads = torch._foreach_add(list(grads), list(params), alpha=cfg.weight_decay)
        if cfg.momentum:
            torch._foreach_mul_(list(buffers), cfg.momentum)
            torch._foreach_add_(list(buffers), list(grads))
            grads = buffers
        torch._foreach_add_(list(params), list(grads), alpha=-cfg.lr)


def forward_with_representation(model: torch.nn.Module, head: str, x: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, the input of the layer `head`) of one forward pass."""
    seen: list[torch.Tensor] = []
    hook = model.get_submodule(head).register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        logits = model(x)
    finally:
        hook.remove()
    return logits, seen[-1]
