"""The round loop, written once for every backend.

A model is a list of L entries. What an entry is belongs to the backend: numpy arrays in the
serial backend (serial.py), ObjectRefs in the Ray runtime (runtime/), where the loop moves refs
and never bytes. The algorithm decides what the server does (algorithms/); the loop carries it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

import numpy as np

from fedmr_ray.algorithms import Algorithm, make_algorithm
from fedmr_ray.config import SimulationConfig
from fedmr_ray.data import FederatedDataset
from fedmr_ray.models import ModelSpec, entry_names, initial_state
from fedmr_ray.recombine import recombine
from fedmr_ray.rng import Stream, generator
from fedmr_ray.train import ClientResult, TrainJob

M = TypeVar("M")


class Backend(Protocol[M]):
    def put(self, entries: list[np.ndarray]) -> M: ...

    def train(self, jobs: Sequence[TrainJob], models: Sequence[M]) -> tuple[list[M], list[ClientResult]]:
        """Train models[i] on jobs[i]; results in the jobs' order, whatever order they finish in."""

    def mean(self, models: Sequence[M], weights: np.ndarray) -> M: ...

    def evaluate(self, model: M) -> tuple[float, float]: ...

    def fetch(self, model: M) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class RoundRecord:
    round: int  # rounds completed, 1-based
    stage: str  # "recombine" or "average": what the server did after training
    train_loss: float  # local training loss, weighted by the clients' sample counts
    test_accuracy: float | None = None  # set on evaluated rounds
    test_loss: float | None = None


def sample_cohort(seed: int, round_index: int, num_clients: int, cohort_size: int) -> np.ndarray:
    return generator(seed, Stream.SAMPLE, round_index).choice(num_clients, cohort_size, replace=False)


class Federation(Generic[M]):
    def __init__(self, config: SimulationConfig, spec: ModelSpec, client_sizes: np.ndarray, backend: Backend[M]):
        self.config = config
        self.names = entry_names(spec)
        self.algorithm: Algorithm = make_algorithm(config.algorithm, self.names)
        self.client_sizes = client_sizes
        self.backend = backend
        count = self.algorithm.num_server_models(config.cohort_size)
        if config.algorithm.diverse_init:
            self.models = [backend.put(initial_state(spec, config.seed, j)) for j in range(count)]
        else:
            self.models = [backend.put(initial_state(spec, config.seed))] * count
        self.round = 0
        self.global_model: M | None = None

    def step(self) -> RoundRecord:
        cfg, r = self.config, self.round
        cohort = sample_cohort(cfg.seed, r, len(self.client_sizes), cfg.cohort_size)
        jobs = [TrainJob(slot, int(client), r) for slot, client in enumerate(cohort)]
        trained, results = self.backend.train(jobs, [self.models[j % len(self.models)] for j in range(len(jobs))])
        sizes = np.array([res.num_samples for res in results], dtype=np.float64)
        train_loss = float(np.dot(sizes, [res.loss for res in results]) / sizes.sum())

        step = self.algorithm.server_step(r, sizes, generator(cfg.seed, Stream.RECOMBINE, r))
        mean = None
        if step.perms is not None:
            self.models = recombine(trained, step.perms)
        else:
            mean = self.backend.mean(trained, step.weights)
            self.models = [mean] * step.copies
        self.round += 1
        record = RoundRecord(r + 1, "recombine" if step.perms is not None else "average", train_loss)
        if not cfg.is_eval_round(r):
            return record
        weights = self.algorithm.global_weights(sizes)
        if mean is not None and np.array_equal(weights, step.weights):
            self.global_model = mean
        else:
            self.global_model = self.backend.mean(trained, weights)
        accuracy, loss = self.backend.evaluate(self.global_model)
        return replace(record, test_accuracy=accuracy, test_loss=loss)

    def global_state(self) -> dict[str, np.ndarray]:
        """The last evaluated global model (the last round is always evaluated)."""
        if self.global_model is None:
            raise RuntimeError("no round has been evaluated yet")
        return dict(zip(self.names, self.backend.fetch(self.global_model), strict=True))


def run_summary(data: FederatedDataset, federation: Federation, devices: Sequence[str], vectorised: bool) -> dict:
    """What a run reports once set up; `majority_class` is the test accuracy of always guessing
    the test set's commonest class, the floor any trained model should clear; `vectorised`,
    whether executors train several clients at once (train.ClientTrainer)."""
    return {
        "num_executors": len(devices), "devices": sorted(set(devices)), "vectorised": vectorised,
        "train_samples": int(len(data.y_train)), "test_samples": int(len(data.y_test)),
        "num_entries": len(federation.names),
        "majority_class": float(np.bincount(data.y_test).max() / len(data.y_test)),
    }
