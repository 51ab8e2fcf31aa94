"""Several clients trained at once on one trainer: their models stacked, each step vectorised over
them (torch.func.vmap), which for a small model, where most of a step is per-operation overhead,
pays that overhead once for many clients.

Used only where it gives bit for bit the numbers of one by one (`Lanes.is_exact`, checked when a
trainer starts), and only for models whose step depends on nothing but parameters and data (no
buffers, no dropout, no recurrent layers).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedmr_ray.train.steps import Trained, TrainJob, as_tensor, gradients, sgd_step, weighted_cross_entropy

if TYPE_CHECKING:
    from fedmr_ray.train.trainer import ClientTrainer


class Lanes:
    def __init__(self, trainer: ClientTrainer):
        self.trainer = trainer
        self._vmapped = torch.func.vmap(torch.func.grad_and_value(self._functional_loss))

    def _functional_loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                         weights: torch.Tensor) -> torch.Tensor:
        return weighted_cross_entropy(torch.func.functional_call(self.trainer.model, params, (x,)), y, weights)

    def train(self, jobs: Sequence[TrainJob], models: Sequence[Sequence[np.ndarray]],
              rows: Sequence[np.ndarray]) -> list[Trained]:
        """The jobs trained in `client_batch` lanes, a stack of models that takes one step for every
        lane at once; a client that finishes hands its lane to the next, the longest first, so the
        lanes stay full however unequal the clients are. The lanes in use are always the first
        ones, so that each step works on views of the stack. Once two or fewer clients are left,
        where a vectorised step costs more than it saves, they finish one by one on the resident
        model. `rows`: each job's rows in the trainer's current arrays."""
        trainer = self.trainer
        config, device = trainer.train_config, trainer.device
        plans = [trainer.batches(job, r) for job, r in zip(jobs, rows)]
        queue = deque(sorted(range(len(jobs)), key=lambda i: -len(plans[i])))
        width = min(config.client_batch, len(jobs))
        names = list(trainer.params)
        stacked = [torch.empty((width, *p.shape), dtype=p.dtype, device=device) for p in trainer.params.values()]
        buffers = [torch.zeros_like(p) for p in stacked]
        totals = torch.zeros(width, device=device)
        client = [0] * width  # the job each lane trains
        step = [0] * width  # its next step
        started = [0.0] * len(jobs)  # when each job's training began
        out: list = [None] * len(jobs)

        def start(lane: int) -> None:
            client[lane], step[lane] = queue.popleft(), 0
            started[client[lane]] = time.perf_counter()
            with torch.no_grad():
                for p, b, entry in zip(stacked, buffers, models[client[lane]]):
                    p[lane].copy_(as_tensor(entry, device))
                    b[lane].zero_()
                totals[lane] = 0

        def finish(lane: int) -> None:
            i = client[lane]
            out[i] = Trained([p[lane].cpu().numpy().copy() for p in stacked],
                             trainer.result(jobs[i], totals[lane], len(plans[i]), len(rows[i]), started[i]))

        def move(source: int, lane: int) -> None:
            client[lane], step[lane] = client[source], step[source]
            with torch.no_grad():
                for tensor in (*stacked, *buffers, totals):
                    tensor[lane] = tensor[source]

        for lane in range(width):
            start(lane)
        active = width
        while active > 2:
            x, y, weights = trainer.inputs([plans[client[lane]][step[lane]] for lane in range(active)])
            grads, losses = self._vmapped(dict(zip(names, (p[:active] for p in stacked))), x, y, weights)
            sgd_step([p[:active] for p in stacked], [grads[name] for name in names],
                     [b[:active] for b in buffers], config)
            totals[:active] += losses
            for lane in reversed(range(active)):  # lanes above `lane` are settled: safe to move
                step[lane] += 1
                if step[lane] < len(plans[client[lane]]):
                    continue
                finish(lane)
                if queue:
                    start(lane)
                else:
                    active -= 1
                    if lane != active:
                        move(active, lane)
        for lane in range(active):
            with torch.no_grad():
                for param, p in zip(trainer.params.values(), stacked):
                    param.copy_(p[lane])
            trainer.run(plans[client[lane]][step[lane]:], [b[lane].clone() for b in buffers], totals[lane])
            with torch.no_grad():
                for param, p in zip(trainer.params.values(), stacked):
                    p[lane].copy_(param)
            finish(lane)
        return out

    def is_exact(self) -> bool:
        """Whether a vectorised step gives bit for bit the losses and gradients of steps one by
        one on the resident model, here, for short (padded) batches too. Run when the trainer
        starts, on its test set, with padding on."""
        trainer = self.trainer
        # stochastic or stateful layers; and torch's fused RNNs, which vmap runs lane by lane (no
        # batching rule for them: nothing to gain)
        excluded = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._NormBase, torch.nn.RNNBase)
        if list(trainer.model.buffers()) or any(isinstance(m, excluded) for m in trainer.model.modules()):
            return False
        trainer.padded = True
        params = trainer.params
        saved = [p.detach().clone() for p in params.values()]
        generator_ = torch.Generator().manual_seed(0)
        size, client_batch = trainer.train_config.batch_size, trainer.train_config.client_batch
        try:
            for count in sorted({3, max(client_batch, 3)}):
                stacked = [p.detach()[None] + 0.01 * torch.randn((count, *p.shape), generator=generator_).to(p)
                           for p in saved]
                batches = [torch.randint(0, len(trainer._y), (size - i % 2 * (size // 2),), generator=generator_).numpy()
                           for i in range(count)]
                x, y, weights = trainer.inputs(batches)
                grads, losses = self._vmapped(dict(zip(params, stacked)), x, y, weights)
                for i in range(count):
                    with torch.no_grad():
                        for param, p in zip(params.values(), stacked):
                            param.copy_(p[i])
                    loss = weighted_cross_entropy(trainer.model(x[i]), y[i], weights[i])
                    one = gradients(loss, list(params.values()))
                    if not torch.equal(loss, losses[i]) or not all(
                            torch.equal(g, grads[name][i]) for g, name in zip(one, params)):
                        return False
            return True
        finally:
            with torch.no_grad():
                for param, value in zip(params.values(), saved):
                    param.copy_(value)
