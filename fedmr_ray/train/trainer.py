"""Local training of one client after another on one resident model: plain PyTorch, no Ray.

A `ClientTrainer` keeps one resident nn.Module and the dataset; each `train` call loads a model's
entries into it, runs local SGD on one client's shard and returns the new entries. Randomness
(shuffling, dropout) is seeded from (seed, round, client), so the result does not depend on which
trainer ran it, what it ran before, or which clients it trained beside it. Several clients at
once are lanes.py's, the test set evaluate.py's, the timing of a step timing.py's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

import numpy as np
import torch

from fedmr_ray.config import TrainConfig
from fedmr_ray.data import FederatedDataset
from fedmr_ray.data.augment import augment as augment_batch
from fedmr_ray.models import ModelSpec
from fedmr_ray.models.info import model_info
from fedmr_ray.models.maxpool import use_fast_pools
from fedmr_ray.rng import Stream, generator, torch_seed
from fedmr_ray.train.evaluate import evaluate, evaluate_per_client
from fedmr_ray.train.hooks import LocalRule, LocalRun
from fedmr_ray.train.lanes import Lanes
from fedmr_ray.train.steps import (
    ClientResult,
    Entries,
    Trained,
    TrainJob,
    as_tensor,
    forward_with_representation,
    gradients,
    sgd_step,
    weighted_cross_entropy,
)

CPU = torch.device("cpu")


class ClientTrainer:
    """Trains clients on one resident model. A fresh optimizer state per client and round, as the
    reference builds a fresh optimizer for every local update.

    `train_many` trains several clients at once where the model allows (lanes.py): only where that
    gives bit for bit the numbers of one by one (`self.vectorised`, checked when the trainer
    starts). Such models also pad an epoch's short last batch to full size with zero loss weights,
    one by one as well (`self.padded`), so that every step has one shape and client_batch changes
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
        self.name = "serial"  # who trains, in its clients' results (an executor sets its own)
        # the arrays batches are drawn from: the clients of the call at hand (see _use); the test
        # set until the first, for the start-up check of vectorising
        self._x, self._y = as_tensor(data.x_test, CPU), as_tensor(data.y_test, CPU)
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None
        self._holdout: tuple[torch.Tensor, torch.Tensor] | None = None  # the clients' held-out splits, joined
        self.lanes = Lanes(self)
        # a local rule's terms see the whole batch, and augmentation draws random numbers per
        # client: no padding, no vectorising under either
        self.padded = local is None and not augment and self.lanes.is_exact()
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
        self._x, self._y = as_tensor(x, CPU), as_tensor(y, CPU)
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

    def inputs(self, batches: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, loss weights) of one batch per client, stacked: [clients, batch, ...]."""
        lengths = [len(rows) for rows in batches]
        width = self._width(max(lengths))
        x, y = self._select(np.stack([self._pad(rows, width) for rows in batches]))
        return x, y, self._loss_weights(width)[lengths]

    def _input(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, loss weights) of one batch: `inputs` for one client."""
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

    def run(self, batches: Sequence[np.ndarray], buffers: list[torch.Tensor], total: torch.Tensor,
            run: LocalRun | None = None, augment: torch.Generator | None = None) -> None:
        """Local SGD of the resident model over these batches, adding the step losses to `total`;
        with a local rule, its loss terms and gradient adjustments too; with a generator, each
        batch augmented (random crops and flips) from it."""
        params, rule = list(self.params.values()), self.local
        for rows in batches:
            x, y, weights = self._input(rows)
            if augment is not None:
                x = augment_batch(x, augment, pad_value=self.data.black)
            if run is None:
                loss = weighted_cross_entropy(self.model(x), y, weights)
                grads = gradients(loss, params)
            else:
                if rule.representation:
                    logits, representation = forward_with_representation(self.model, self.info.head, x)
                else:
                    logits, representation = self.model(x), None
                loss = weighted_cross_entropy(logits, y, weights)
                extra = rule.loss(run, x, y, logits, representation)
                grads = rule.grads(run, list(gradients(loss if extra is None else loss + extra, params)))
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
        started = time.perf_counter()
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
        run = self._local_run(job, len(rows), client_state or {}, server or {}) if self.local else None
        if run is not None:
            self.local.start(run)
        crops = (torch.Generator().manual_seed(torch_seed(self.seed, Stream.TRAIN, job.round, job.client, 2))
                 if self.augment else None)
        self.run(batches, [torch.zeros_like(p) for p in self.params.values()], total, run, crops)
        state = self.local.finish(run) if run is not None else {}
        return Trained(self.state(), self.result(job, total, len(batches), len(rows), started), state)

    def _local_run(self, job: TrainJob, samples: int, client_state: dict[str, Entries],
                   server: dict[str, Entries]) -> LocalRun:
        def tensors(entries: Entries) -> list[torch.Tensor]:
            return [as_tensor(entry, self.device) for entry in entries]

        return LocalRun(
            job=job, model=self.model, spec=self.spec, info=self.info, config=self.train_config, device=self.device,
            start_entries=[t.detach().clone() for t in self.entries],
            start_params=[p.detach().clone() for p in self.params.values()],
            client={name: tensors(entries) for name, entries in client_state.items()},
            server={name: tensors(entries) for name, entries in server.items()},
            generator=torch.Generator().manual_seed(torch_seed(self.seed, Stream.TRAIN, job.round, job.client, 1)),
            samples=samples)

    def result(self, job: TrainJob, total: torch.Tensor, steps: int, samples: int, started: float) -> ClientResult:
        """The client's result, `started` being when its training began (time.perf_counter)."""
        return ClientResult(job.client, samples, float(total) / max(steps, 1), steps,
                            time.perf_counter() - started, self.name)

    def train_many(self, jobs: Sequence[TrainJob], models: Sequence[Sequence[np.ndarray]],
                   client_states: Sequence[dict[str, Entries]] | None = None,
                   server: dict[str, Entries] | None = None) -> list[Trained]:
        """`train` for each job, in the jobs' order: vectorised in lanes where the trainer is
        (and for three clients or more), else one by one."""
        rows = self._use([job.client for job in jobs])
        if not self.vectorised or len(jobs) < 3:
            states = client_states or [{} for _ in jobs]
            return [self._train(job, model, r, state, server)
                    for job, model, r, state in zip(jobs, models, rows, states, strict=True)]
        return self.lanes.train(jobs, models, rows)

    def evaluate(self, entries: Sequence[np.ndarray]) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of the model with these entries on the whole test set."""
        if self._test is None:
            self._test = (as_tensor(self.data.x_test, self.device), as_tensor(self.data.y_test, self.device))
        self.load(entries)
        return evaluate(self.model, *self._test)

    def evaluate_clients(self, entries: Sequence[np.ndarray]) -> np.ndarray:
        """[2, clients]: the model's accuracy and mean cross-entropy on each client's held-out
        split (data.client_holdout, set where the run evaluates client by client)."""
        offsets, rows = self.data.client_holdout
        if self._holdout is None:
            self._holdout = (as_tensor(self.data.x_test[rows], self.device), as_tensor(self.data.y_test[rows], self.device))
        self.load(entries)
        return evaluate_per_client(self.model, *self._holdout, offsets)
