"""Local training and evaluation: plain PyTorch, no Ray.

A `ClientTrainer` keeps one resident nn.Module and the dataset; each `train` call loads a model's
entries into it, runs local SGD on one client's shard and returns the new entries. Randomness
(shuffling, dropout) is seeded from (seed, round, client), so the result does not depend on which
trainer ran it or what it ran before.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fedmr_ray.config import TrainConfig
from fedmr_ray.data import FederatedDataset
from fedmr_ray.models import ModelSpec
from fedmr_ray.rng import Stream, generator, torch_seed

EVAL_BATCH = 1024


@dataclass(frozen=True)
class TrainJob:
    slot: int  # position in the round's cohort: which server model it trains and returns
    client: int
    round: int


@dataclass(frozen=True)
class ClientResult:
    client: int
    num_samples: int
    loss: float  # mean cross-entropy over the local steps


def as_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor over an array, read-only ones from the object store included (torch only reads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(array)).to(device)


class MomentumSGD:
    """torch.optim.SGD (momentum, weight decay, no dampening or Nesterov), step for step the same
    arithmetic, in three fused list ops instead of the optimizer's per-parameter Python loop: for a
    small model the step's overhead is a large share of the training time. A fresh one per round,
    as the reference builds a fresh optimizer for every local update."""

    def __init__(self, params: Sequence[torch.Tensor], lr: float, momentum: float, weight_decay: float):
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers: list[torch.Tensor] | None = None

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        grads = list(grads)
        if self.weight_decay:
            grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
        if self.momentum:
            if self.buffers is None:
                self.buffers = [g.detach().clone() for g in grads]
            else:
                torch._foreach_mul_(self.buffers, self.momentum)
                torch._foreach_add_(self.buffers, grads)
            grads = self.buffers
        torch._foreach_add_(self.params, grads, alpha=-self.lr)


class ClientTrainer:
    def __init__(self, spec: ModelSpec, data: FederatedDataset, train: TrainConfig, seed: int,
                 device: str = "cpu"):
        self.device = torch.device(device)
        self.model = spec.build().to(self.device)
        self.entries = list(self.model.state_dict().values())  # share storage with the module
        self.data = data
        self.train_config = train
        self.seed = seed
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None

    def load(self, entries: Sequence[np.ndarray]) -> None:
        with torch.no_grad():
            for tensor, array in zip(self.entries, entries, strict=True):
                tensor.copy_(as_tensor(array, self.device))

    def state(self) -> list[np.ndarray]:
        return [t.detach().cpu().numpy().copy() for t in self.entries]

    def train(self, job: TrainJob, entries: Sequence[np.ndarray]) -> tuple[list[np.ndarray], ClientResult]:
        cfg = self.train_config
        self.load(entries)
        x, y = self.data.client_samples(job.client)
        x, y = as_tensor(x, self.device), as_tensor(y, self.device)
        n = len(y)
        rng = generator(self.seed, Stream.TRAIN, job.round, job.client)
        torch.manual_seed(torch_seed(self.seed, Stream.TRAIN, job.round, job.client))
        params = list(self.model.parameters())
        optimizer = MomentumSGD(params, cfg.lr, cfg.momentum, cfg.weight_decay)
        self.model.train()
        total = torch.zeros((), device=self.device)
        steps = 0
        for _ in range(cfg.local_epochs):
            order = as_tensor(rng.permutation(n), self.device)
            xs, ys = x[order], y[order]  # one gather per epoch; the batches are then views
            for start in range(0, n, cfg.batch_size):
                loss = F.cross_entropy(self.model(xs[start:start + cfg.batch_size]), ys[start:start + cfg.batch_size])
                optimizer.step(torch.autograd.grad(loss, params))
                total += loss.detach()
                steps += 1
        return self.state(), ClientResult(job.client, n, float(total) / max(steps, 1))

    def evaluate(self, entries: Sequence[np.ndarray]) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of the model with these entries on the whole test set."""
        if self._test is None:
            self._test = (as_tensor(self.data.x_test, self.device), as_tensor(self.data.y_test, self.device))
        x, y = self._test
        self.load(entries)
        self.model.eval()
        correct, loss = 0, 0.0
        with torch.no_grad():
            for start in range(0, len(y), EVAL_BATCH):
                logits = self.model(x[start:start + EVAL_BATCH])
                target = y[start:start + EVAL_BATCH]
                loss += float(F.cross_entropy(logits, target, reduction="sum"))
                correct += int((logits.argmax(dim=1) == target).sum())
        return correct / len(y), loss / len(y)
