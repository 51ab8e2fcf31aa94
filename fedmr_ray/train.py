"""Local training and evaluation: plain PyTorch, no Ray.

A `ClientTrainer` keeps one resident nn.Module and the dataset; each `train` call loads a model's
entries into it, runs local SGD on one client's shard and returns the new entries. Randomness
(shuffling, dropout) is seeded from (seed, round, client), so the result does not depend on which
trainer ran it, what it ran before, or which clients it trained beside it.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from fedmr_ray.config import TrainConfig
from fedmr_ray.data import FederatedDataset
from fedmr_ray.data.augment import augment as augment_batch
from fedmr_ray.models import ModelSpec
from fedmr_ray.models.info import ModelInfo, model_info
from fedmr_ray.models.pool import use_fast_pools
from fedmr_ray.rng import Stream, generator, torch_seed

if TYPE_CHECKING:
    from fedmr_ray.algorithms.base import LocalRule

Entries = list[np.ndarray]

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
    loss: float  # mean cross-entropy over the local steps (an algorithm's extra terms excluded)


@dataclass
class Trained:
    entries: Entries
    result: ClientResult
    state: dict[str, Entries] = field(default_factory=dict)  # the client's new state (LocalRule)


@dataclass
class LocalRun:
    """One client's local training as a LocalRule sees it."""

    trainer: ClientTrainer
    job: TrainJob
    start_entries: list[torch.Tensor]  # the model it received, every state entry
    start_params: list[torch.Tensor]  # the same, its parameters only
    client: dict[str, list[torch.Tensor]]  # its stored state (the rule's client_reads)
    server: dict[str, list[torch.Tensor]]  # the server state (the rule's server_state)
    generator: torch.Generator  # for the rule's own random numbers, seeded by (seed, round, client)
    steps: int = 0  # local steps taken so far
    scratch: dict = field(default_factory=dict)

    @property
    def params(self) -> list[torch.Tensor]:
        return list(self.trainer.params.values())

    @property
    def config(self) -> TrainConfig:
        return self.trainer.train_config

    @property
    def info(self) -> ModelInfo:
        return self.trainer.info

    @property
    def device(self) -> torch.device:
        return self.trainer.device

    def entries(self) -> list[torch.Tensor]:
        return [t.detach() for t in self.trainer.entries]

    def state(self) -> Entries:
        return self.trainer.state()

    def head(self, representation: torch.Tensor) -> torch.Tensor:
        """The model's last linear layer applied to a representation."""
        return self.trainer.model.get_submodule(self.info.head)(representation)

    def frozen_model(self, entries: Sequence[torch.Tensor]) -> torch.nn.Module:
        """A copy of the model with these entries, in training mode, for forward passes only."""
        model = self.trainer.spec.build().to(self.device)
        model.load_state_dict(dict(zip(self.info.names, entries, strict=True)))
        return model.requires_grad_(False)

    def representation_of(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return forward_with_representation(model, self.info.head, x)[1]


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


def as_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor over an array, read-only ones from the object store included (torch only reads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(array)).to(device)


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The local loss: sum over the batch of weight x cross-entropy, the weights 1/(samples) on a
    batch's samples and 0 on padding, so the mean over the real samples, as the reference's."""
    return (F.cross_entropy(logits, target, reduction="none") * weights).sum()


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


class ClientTrainer:
    """Trains clients on one resident model. A fresh optimizer state per client and round, as the
    reference builds a fresh optimizer for every local update.

    `train_many` trains several clients at once where the model allows: their models stacked, each
    step vectorised over them (torch.func.vmap), which for a small model, where most of a step is
    per-operation overhead, pays that overhead once for many clients. It is used only where it
    gives bit for bit the numbers of one by one (`self.vectorised`, checked when the trainer
    starts), and only for models whose step depends on nothing but parameters and data (no
    buffers, no dropout). Such models also pad an epoch's short last batch to full size with zero
    loss weights, one by one as well, so that every step has one shape and client_batch changes
    no number; the loss and its gradient are those of the real samples.
    """

    def __init__(self, spec: ModelSpec, data: FederatedDataset, train: TrainConfig, seed: int,
                 device: str = "cpu", local: LocalRule | None = None, augment: bool = False):
        self.device = torch.device(device)
        self.spec, self.info, self.local, self.augment = spec, model_info(spec), local, augment
        self.model = spec.build().to(self.device)
        self.entries = list(self.model.state_dict().values())  # share storage with the module
        # on the CPU, numpy views of them: loading and reading a model are then plain copies
        self._views = [t.detach().numpy() for t in self.entries] if self.device.type == "cpu" else None
        self.params = dict(self.model.named_parameters())
        self.data = data
        self.train_config = train
        self.seed = seed
        # the arrays batches are drawn from: the clients of the call at hand (see _use); the test
        # set until the first, for the start-up check of vectorising
        self._x, self._y = as_tensor(data.x_test, torch.device("cpu")), as_tensor(data.y_test, torch.device("cpu"))
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None
        self._vmapped = torch.func.vmap(torch.func.grad_and_value(self._functional_loss))
        # a local rule's terms see the whole batch, and augmentation draws random numbers per
        # client: no padding, no vectorising under either
        self.padded = local is None and not augment and self._vectorising_is_exact()
        self.vectorised = self.padded and train.client_batch > 1
        # one by one on the CPU, torch's 2x2 max-pooling swapped for an exact faster one (the
        # vectorised step, through torch.func, keeps torch's)
        self.fast_pools = use_fast_pools(self.model) if self.device.type == "cpu" and not self.vectorised else 0

    def load(self, entries: Sequence[np.ndarray]) -> None:
        if self._views is not None:
            for view, array in zip(self._views, entries, strict=True):
                np.copyto(view, array, casting="unsafe")  # as copy_ would
            return
        with torch.no_grad():
            for tensor, array in zip(self.entries, entries, strict=True):
                tensor.copy_(as_tensor(array, self.device))

    def state(self) -> list[np.ndarray]:
        if self._views is not None:
            return [view.copy() for view in self._views]
        return [t.detach().cpu().numpy().copy() for t in self.entries]

    def _use(self, clients: Sequence[int]) -> list[np.ndarray]:
        """Make these clients' samples the ones batches are drawn from; each client's rows."""
        x, y, rows = self.data.client_arrays(clients)
        self._x, self._y = as_tensor(x, torch.device("cpu")), as_tensor(y, torch.device("cpu"))
        return rows

    def batches(self, job: TrainJob, rows: np.ndarray) -> list[np.ndarray]:
        """The client's local steps: per epoch a shuffle of its rows, cut into batches."""
        size = self.train_config.batch_size
        rng = generator(self.seed, Stream.TRAIN, job.round, job.client)
        steps = []
        for _ in range(self.train_config.local_epochs):
            order = rows[rng.permutation(len(rows))]
            steps += [order[start:start + size] for start in range(0, len(rows), size)]
        return steps

    def _inputs(self, batches: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, loss weights) of one batch per client, stacked: [clients, batch, ...]."""
        lengths = [len(rows) for rows in batches]
        width = self._width(max(lengths))
        x, y = self._select(np.stack([self._pad(rows, width) for rows in batches]))
        return x, y, self._loss_weights(width)[lengths]

    def _input(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, loss weights) of one batch: `_inputs` for one client."""
        width = self._width(len(rows))
        x, y = self._select(self._pad(rows, width))
        return x, y, self._loss_weights(width)[len(rows)]

    def _width(self, longest: int) -> int:
        """A step's batch width: the full batch size where short batches are padded."""
        return self.train_config.batch_size if self.padded else longest

    @staticmethod
    def _pad(rows: np.ndarray, width: int) -> np.ndarray:
        return rows if len(rows) == width else np.resize(rows, width)

    def _select(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples (x, y) at these rows, shaped as `rows`, on the device (index_select on the
        flat rows: 3x faster than x[index])."""
        index = torch.from_numpy(rows.reshape(-1))
        x, y = torch.index_select(self._x, 0, index), torch.index_select(self._y, 0, index)
        return x.view(*rows.shape, *x.shape[1:]).to(self.device), y.view(rows.shape).to(self.device)

    @functools.cache
    def _loss_weights(self, width: int) -> torch.Tensor:
        """Row n: a batch of n samples padded to `width`: 1/n on the samples, 0 on the padding."""
        table = torch.zeros(width + 1, width)
        for n in range(1, width + 1):
            table[n, :n] = torch.tensor(1.0 / n, dtype=torch.float32)
        return table.to(self.device)

    def _functional_loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                         weights: torch.Tensor) -> torch.Tensor:
        return weighted_cross_entropy(torch.func.functional_call(self.model, params, (x,)), y, weights)

    def _run(self, batches: Sequence[np.ndarray], buffers: list[torch.Tensor], total: torch.Tensor,
             run: LocalRun | None = None, augment: torch.Generator | None = None) -> None:
        """Local SGD of the resident model over these batches, adding the step losses to `total`;
        with a local rule, its loss terms and gradient adjustments too; with a generator, each
        batch augmented (random crops and flips) from it."""
        params, rule = list(self.params.values()), self.local
        for rows in batches:
            x, y, weights = self._input(rows)
            if augment is not None:
                x = augment_batch(x, augment)
            if run is None:
                loss = weighted_cross_entropy(self.model(x), y, weights)
                grads = torch.autograd.grad(loss, params)
            else:
                if rule.representation:
                    logits, representation = forward_with_representation(self.model, self.info.head, x)
                else:
                    logits, representation = self.model(x), None
                loss = weighted_cross_entropy(logits, y, weights)
                extra = rule.loss(run, x, y, logits, representation)
                grads = rule.grads(run, list(torch.autograd.grad(loss if extra is None else loss + extra, params)))
                run.steps += 1
            sgd_step(params, grads, buffers, self.train_config)
            total += loss.detach()

    def train(self, job: TrainJob, entries: Sequence[np.ndarray], client_state: dict[str, Entries] | None = None,
              server: dict[str, Entries] | None = None) -> Trained:
        """One client's local training from these entries; with a local rule, from its stored
        state and the server's too."""
        return self._train(job, entries, self._use([job.client])[0], client_state, server)

    def _train(self, job: TrainJob, entries: Sequence[np.ndarray], rows: np.ndarray,
               client_state: dict[str, Entries] | None, server: dict[str, Entries] | None) -> Trained:
        self.load(entries)
        # dropout draws from the device's default generator: seed that one (torch.manual_seed
        # would also queue a seed for every CUDA device, a captured stack trace per client)
        seed = torch_seed(self.seed, Stream.TRAIN, job.round, job.client)
        torch.random.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)
        self.model.train()
        batches = self.batches(job, rows)
        total = torch.zeros((), device=self.device)
        run = self._local_run(job, client_state or {}, server or {}) if self.local else None
        if run is not None:
            self.local.start(run)
        crops = (torch.Generator().manual_seed(torch_seed(self.seed, Stream.TRAIN, job.round, job.client, 2))
                 if self.augment else None)
        self._run(batches, [torch.zeros_like(p) for p in self.params.values()], total, run, crops)
        state = self.local.finish(run) if run is not None else {}
        return Trained(self.state(), self._result(job, total, len(batches), len(rows)), state)

    def _local_run(self, job: TrainJob, client_state: dict[str, Entries], server: dict[str, Entries]) -> LocalRun:
        def tensors(entries: Entries) -> list[torch.Tensor]:
            return [as_tensor(entry, self.device) for entry in entries]

        return LocalRun(
            trainer=self, job=job,
            start_entries=[t.detach().clone() for t in self.entries],
            start_params=[p.detach().clone() for p in self.params.values()],
            client={name: tensors(entries) for name, entries in client_state.items()},
            server={name: tensors(entries) for name, entries in server.items()},
            generator=torch.Generator().manual_seed(torch_seed(self.seed, Stream.TRAIN, job.round, job.client, 1)))

    @staticmethod
    def _result(job: TrainJob, total: torch.Tensor, steps: int, samples: int) -> ClientResult:
        return ClientResult(job.client, samples, float(total) / max(steps, 1))

    def train_many(self, jobs: Sequence[TrainJob], models: Sequence[Sequence[np.ndarray]],
                   client_states: Sequence[dict[str, Entries]] | None = None,
                   server: dict[str, Entries] | None = None) -> list[Trained]:
        """`train` for each job, in the jobs' order.

        Vectorised, the clients run in `client_batch` lanes, a stack of models that takes one
        step for every lane at once; a client that finishes hands its lane to the next, the
        longest first, so the lanes stay full however unequal the clients are. The lanes in use
        are always the first ones, so that each step works on views of the stack. Once two or
        fewer clients are left, where a vectorised step costs more than it saves, they finish
        one by one on the resident model."""
        rows = self._use([job.client for job in jobs])
        if not self.vectorised or len(jobs) < 3:
            states = client_states or [{} for _ in jobs]
            return [self._train(job, model, r, state, server)
                    for job, model, r, state in zip(jobs, models, rows, states, strict=True)]
        plans = [self.batches(job, r) for job, r in zip(jobs, rows)]
        queue = deque(sorted(range(len(jobs)), key=lambda i: -len(plans[i])))
        width = min(self.train_config.client_batch, len(jobs))
        names = list(self.params)
        stacked = [torch.empty((width, *p.shape), dtype=p.dtype, device=self.device) for p in self.params.values()]
        buffers = [torch.zeros_like(p) for p in stacked]
        totals = torch.zeros(width, device=self.device)
        client = [0] * width  # the job each lane trains
        step = [0] * width  # its next step
        out: list = [None] * len(jobs)

        def start(lane: int) -> None:
            client[lane], step[lane] = queue.popleft(), 0
            with torch.no_grad():
                for p, b, entry in zip(stacked, buffers, models[client[lane]]):
                    p[lane].copy_(as_tensor(entry, self.device))
                    b[lane].zero_()
                totals[lane] = 0

        def finish(lane: int) -> None:
            i = client[lane]
            out[i] = Trained([p[lane].cpu().numpy().copy() for p in stacked],
                             self._result(jobs[i], totals[lane], len(plans[i]), len(rows[i])))

        def move(source: int, lane: int) -> None:
            client[lane], step[lane] = client[source], step[source]
            with torch.no_grad():
                for tensor in (*stacked, *buffers, totals):
                    tensor[lane] = tensor[source]

        for lane in range(width):
            start(lane)
        active = width
        while active > 2:
            x, y, weights = self._inputs([plans[client[lane]][step[lane]] for lane in range(active)])
            grads, losses = self._vmapped(dict(zip(names, (p[:active] for p in stacked))), x, y, weights)
            sgd_step([p[:active] for p in stacked], [grads[name] for name in names],
                     [b[:active] for b in buffers], self.train_config)
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
                for param, p in zip(self.params.values(), stacked):
                    param.copy_(p[lane])
            self._run(plans[client[lane]][step[lane]:], [b[lane].clone() for b in buffers], totals[lane])
            with torch.no_grad():
                for param, p in zip(self.params.values(), stacked):
                    p[lane].copy_(param)
            finish(lane)
        return out

    def _vectorising_is_exact(self) -> bool:
        """Whether a vectorised step gives bit for bit the losses and gradients of steps one by
        one on the resident model, here, for short (padded) batches too."""
        stochastic = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._NormBase)
        if list(self.model.buffers()) or any(isinstance(m, stochastic) for m in self.model.modules()):
            return False
        self.padded = True
        saved = [p.detach().clone() for p in self.params.values()]
        generator_ = torch.Generator().manual_seed(0)
        size = self.train_config.batch_size
        try:
            for count in sorted({3, max(self.train_config.client_batch, 3)}):
                stacked = [p.detach()[None] + 0.01 * torch.randn((count, *p.shape), generator=generator_).to(p)
                           for p in saved]
                batches = [torch.randint(0, len(self._y), (size - i % 2 * (size // 2),), generator=generator_).numpy()
                           for i in range(count)]
                x, y, weights = self._inputs(batches)
                grads, losses = self._vmapped(dict(zip(self.params, stacked)), x, y, weights)
                for i in range(count):
                    with torch.no_grad():
                        for param, p in zip(self.params.values(), stacked):
                            param.copy_(p[i])
                    loss = weighted_cross_entropy(self.model(x[i]), y[i], weights[i])
                    one = torch.autograd.grad(loss, list(self.params.values()))
                    if not torch.equal(loss, losses[i]) or not all(
                            torch.equal(g, grads[name][i]) for g, name in zip(one, self.params)):
                        return False
            return True
        finally:
            with torch.no_grad():
                for param, value in zip(self.params.values(), saved):
                    param.copy_(value)

    def step_cost(self) -> tuple[float, float]:
        """(seconds of a local step's fixed part, seconds per sample of its batch), timed here on
        the resident model (the fastest of 2 steps on a full batch and of 3 on one sample,
        after one to warm up; the entries restored after): what the pool weighs clients by to
        balance its groups."""
        saved = [t.detach().clone() for t in self.entries]
        rows = np.arange(min(self.train_config.batch_size, len(self._y)))
        buffers = [torch.zeros_like(p) for p in self.params.values()]
        total = torch.zeros((), device=self.device)

        def sync() -> None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)

        def fastest(batch: np.ndarray, tries: int) -> float:
            times = []
            for _ in range(tries):
                sync()
                start = time.perf_counter()
                self._run([batch], buffers, total)
                sync()
                times.append(time.perf_counter() - start)
            return min(times)

        try:
            fastest(rows[:1], 1)  # warm-up
            one, full = fastest(rows[:1], 3), fastest(rows, 2)
        finally:
            self.load(saved)
        per_sample = max(full - one, 0.0) / max(len(rows) - 1, 1)
        return max(one - per_sample, 0.0), per_sample

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
