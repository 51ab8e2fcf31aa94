"""The reference backend: the same round loop in one process, clients one after another.

No Ray: what the Ray runtime must agree with, number for number, and the plain-PyTorch baseline
that benchmarks measure the runtime against.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from fedmr_ray.algorithms.base import weighted_sum
from fedmr_ray.federation import Federation, run_summary
from fedmr_ray.setup import Setup
from fedmr_ray.train import ClientResult, ClientTrainer, TrainJob

Model = list[np.ndarray]


class SerialBackend:
    workers = 1

    def __init__(self, trainer: ClientTrainer):
        self.trainer = trainer

    def put(self, entries: list[np.ndarray]) -> Model:
        return entries

    def train(self, jobs: Sequence[TrainJob], models: Sequence[Model], states: Sequence[dict[str, Model]],
              server: dict[str, Model]) -> tuple[list[Model], list[ClientResult], list[dict[str, Model]]]:
        out = self.trainer.train_many(jobs, models, states, server)
        return [t.entries for t in out], [t.result for t in out], [t.state for t in out]

    def combine(self, terms: Sequence[tuple[float, Model]]) -> Model:
        weights = [w for w, _ in terms]
        return [weighted_sum([m[e] for _, m in terms], weights) for e in range(len(terms[0][1]))]

    def run(self, fn: Callable[..., Model], state: Model, inputs: Sequence[Model], kwargs: dict[str, Any]) -> Model:
        return fn(state, list(inputs), **kwargs)

    def call(self, fn: Callable[..., Any], inputs: Sequence[Model], kwargs: dict[str, Any]) -> Any:
        return fn(list(inputs), **kwargs)

    def evaluate(self, model: Model) -> tuple[float, float]:
        return self.trainer.evaluate(model)

    def evaluate_clients(self, model: Model) -> np.ndarray:
        return self.trainer.evaluate_clients(model)

    def fetch(self, model: Model) -> Model:
        return list(model)


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads for a run in this process, as many as an executor has (one by
    default): a float sum split over other threads rounds otherwise, and the run would not compute
    what it computes on Ray. The process's own setting comes back after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SerialRun:
    """A simulation in this process, with the interface of runtime.driver.RayRun."""

    def __init__(self, setup: Setup):
        config = setup.config
        trainer = ClientTrainer(setup.spec, setup.data, config.train, config.seed, local=setup.algorithm.local,
                                augment=config.data.augment)
        self.federation = Federation(setup, SerialBackend(trainer))
        self.summary = run_summary(setup, ["cpu"], trainer.vectorised)

    def describe(self):
        return self.summary

    def step(self):
        return self.federation.step()

    def complete(self):
        """The record of the last round completed: an interrupted step was abandoned (the
        federation is at the round before) or had just completed (its record may not have been
        noted)."""
        return self.federation.last_record

    def snapshot(self):
        return self.federation.snapshot()

    def restore(self, snapshot) -> None:
        self.federation.restore(snapshot)

    def global_state(self):
        return self.federation.global_state()

    def server_models(self):
        return self.federation.server_models()
