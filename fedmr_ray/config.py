"""The whole configuration of a simulation: one frozen dataclass per concern.

`SimulationConfig.validate()` checks everything a user can get wrong before Ray starts, and
raises `ConfigError` with one line naming the bad value and what is accepted.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """A user error in the configuration: one line, naming the value and what is accepted."""


def one_line(text: object, limit: int = 300) -> str:
    """Text (an exception's message, say) on one line, for a ConfigError."""
    return " ".join(str(text).split())[:limit]


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"
    # LEAF Synthetic(alpha, beta): alpha spreads the clients' models, beta their inputs.
    synthetic_alpha: float = 1.0
    synthetic_beta: float = 1.0
    data_dir: str | None = None  # None: the dataset's default location (see data.catalog)
    cache_dir: str | None = None  # decoded datasets; None: $XDG_CACHE_HOME/fedmr-ray or ~/.cache/fedmr-ray
    partition: str | None = None  # iid, dirichlet, shards, natural; None: natural where the dataset has users
    alpha: float = 0.5  # Dirichlet concentration: lower is more label skew
    shards_per_client: int = 2
    min_samples: int = 10  # dirichlet: redraw until every client holds this many
    partition_file: str | None = None  # Parquet (client_id, sample_index) or the reference's JSON
    augment: bool = False  # CIFAR: random crop (4-pixel padding) and horizontal flip

    def validate(self, model: str) -> None:
        """The data flags, the model against the dataset's input, then the data itself (read and
        cached here when seen for the first time)."""
        from fedmr_ray.data.catalog import PARTITIONS, dataset_spec

        spec = dataset_spec(self.dataset)
        _check(self.synthetic_alpha >= 0 and self.synthetic_beta >= 0, "synthetic alpha and beta must be >= 0")
        _check(self.partition is None or self.partition in PARTITIONS,
               f"--partition {self.partition!r}: accepted values are: {', '.join(PARTITIONS)}")
        _check(self.partition is None or self.partition_file is None,
               "--partition and --partition-file: give one of them, not both")
        _check(self.alpha > 0, f"--alpha {self.alpha}: must be > 0")
        _check(self.shards_per_client >= 1, f"--shards-per-client {self.shards_per_client}: must be an integer >= 1")
        _check(self.min_samples >= 1, f"--min-samples {self.min_samples}: must be an integer >= 1")
        _check(not self.augment or spec.is_cifar,
               f"--augment: random crop and flip are for CIFAR images, not --dataset {self.dataset}")
        from fedmr_ray.models import check_model  # local import: models pull in torch

        check_model(model, spec)


@dataclass(frozen=True)
class TrainConfig:
    local_epochs: int = 5
    batch_size: int = 50
    lr: float = 0.01
    momentum: float = 0.5
    weight_decay: float = 0.0
    # Clients trained at once by one executor, their steps vectorised, where that gives the same
    # numbers as one by one (see train.ClientTrainer); 1 trains them one by one.
    client_batch: int = 16

    def local_steps(self, num_samples: np.ndarray | int) -> np.ndarray | int:
        """Local SGD steps of a client with this many samples (the last batch of an epoch is short)."""
        return self.local_epochs * -(-num_samples // self.batch_size)


@dataclass(frozen=True)
class AlgorithmConfig:
    name: str = "fedmr"
    first_stage_bound: int = 0
    granularity: str = "tensor"
    diverse_init: bool = False
    mu: float | None = None  # FedProx's proximal weight (0.01) or MOON's contrastive weight (5)
    server_lr: float = 1.0  # SCAFFOLD's global step size
    temperature: float = 0.5  # MOON's


@dataclass(frozen=True)
class RuntimeConfig:
    num_actors: int | None = None
    max_actors: int | None = None  # bound of an elastic pool (see runtime.coordinator.plan_executors)
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    address: str | None = None


@dataclass(frozen=True)
class SimulationConfig:
    clients: int = 1000
    fraction: float = 0.1
    rounds: int = 150
    eval_every: int = 10
    seed: int = 0
    model: str = "mlp"
    output: str | None = None
    checkpoint_every: int = 0  # rounds between checkpoints in the run directory; 0: only on Ctrl-C
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def cohort_size(self) -> int:
        """K: the clients sampled per round, and the number of models FedMR keeps."""
        return max(1, int(self.fraction * self.clients))

    def is_eval_round(self, round_index: int) -> bool:
        """Rounds are 0-based here; evaluation follows the reference (round % 10 == 9) and the last."""
        return (round_index + 1) % self.eval_every == 0 or round_index + 1 == self.rounds

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SimulationConfig:
        nested = {"data": DataConfig, "train": TrainConfig, "algorithm": AlgorithmConfig,
                  "runtime": RuntimeConfig}
        kwargs = {k: (nested[k](**v) if k in nested else v) for k, v in raw.items()}
        return cls(**kwargs)

    def validate(self, resuming: bool = False, data_here: bool = True) -> SimulationConfig:
        """Everything a user can get wrong, before Ray starts; `resuming`: the output directory
        is an existing run's; `data_here`: the dataset's files are on this machine (not so for a
        run rendered for a Kubernetes cluster), so they are read and checked too."""
        _check(self.clients >= 1, f"--clients {self.clients}: must be an integer >= 1")
        _check(0.0 < self.fraction <= 1.0, f"--fraction {self.fraction}: must be in (0, 1]")
        _check(self.rounds >= 1, f"--rounds {self.rounds}: must be an integer >= 1")
        _check(self.eval_every >= 1, f"--eval-every {self.eval_every}: must be an integer >= 1")
        _check(self.seed >= 0, f"--seed {self.seed}: must be an integer >= 0")
        self.data.validate(self.model)
        t = self.train
        _check(t.local_epochs >= 1, f"--local-epochs {t.local_epochs}: must be an integer >= 1")
        _check(t.batch_size >= 1, f"--batch-size {t.batch_size}: must be an integer >= 1")
        _check(t.lr > 0, f"--lr {t.lr}: must be > 0")
        _check(0 <= t.momentum < 1, f"--momentum {t.momentum}: must be in [0, 1)")
        _check(t.weight_decay >= 0, f"--weight-decay {t.weight_decay}: must be >= 0")
        _check(t.client_batch >= 1, f"--client-batch {t.client_batch}: must be an integer >= 1")
        a = self.algorithm
        from fedmr_ray.algorithms import ALGORITHMS

        _check(a.name in ALGORITHMS,
               f"--algorithm {a.name!r}: accepted values are: {', '.join(ALGORITHMS)}")
        _check(a.mu is None or a.mu >= 0, f"--mu {a.mu}: must be >= 0")
        _check(a.server_lr > 0, f"--server-lr {a.server_lr}: must be > 0")
        _check(a.temperature > 0, f"--temperature {a.temperature}: must be > 0")
        _check(a.first_stage_bound >= 0,
               f"--first-stage-bound {a.first_stage_bound}: must be an integer >= 0")
        from fedmr_ray.recombine import parse_granularity

        parse_granularity(a.granularity)
        r = self.runtime
        _check(r.num_actors is None or r.num_actors >= 1,
               f"--num-actors {r.num_actors}: must be an integer >= 1")
        _check(r.max_actors is None or r.max_actors >= 1,
               f"--max-actors {r.max_actors}: must be an integer >= 1")
        _check(r.cpus_per_actor > 0, f"--cpus-per-actor {r.cpus_per_actor}: must be > 0")
        _check(r.gpus_per_actor >= 0, f"--gpus-per-actor {r.gpus_per_actor}: must be >= 0")
        _check(r.gpus_per_actor <= 1 or r.gpus_per_actor == int(r.gpus_per_actor),
               f"--gpus-per-actor {r.gpus_per_actor}: must be a fraction in [0, 1] or a whole number")
        _check(self.checkpoint_every >= 0, f"--checkpoint-every {self.checkpoint_every}: must be an integer >= 0")
        if self.output is not None and not resuming:
            check_output_dir(self.output)
        if data_here:
            from fedmr_ray.data import check_data

            check_data(self)  # last: the first time a dataset is seen, it is read and cached here
        return self


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_output_dir(output: str) -> None:
    """The run directory must be creatable and must not already hold a run (nothing is overwritten)."""
    path = Path(output)
    if path.exists():
        _check(path.is_dir(), f"--output {output}: exists and is not a directory")
        _check(not any(path.iterdir()),
               f"--output {output}: directory is not empty; choose a new path or remove it")
        _check(os.access(path, os.W_OK), f"--output {output}: directory is not writable")
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    _check(parent.is_dir() and os.access(parent, os.W_OK),
           f"--output {output}: cannot create it ({parent} is not a writable directory)")
