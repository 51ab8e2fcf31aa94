"""The reference backend: the same round loop in one process, clients one after another.

No Ray: what the Ray runtime must agree with, number for number, and the plain-PyTorch baseline
that benchmarks measure the runtime against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedmr_ray.algorithms import weighted_mean
from fedmr_ray.train import ClientResult, ClientTrainer, TrainJob

Model = list[np.ndarray]


class SerialBackend:
    def __init__(self, trainer: ClientTrainer):
        self.trainer = trainer

    def put(self, entries: list[np.ndarray]) -> Model:
        return entries

    def train(self, jobs: Sequence[TrainJob], models: Sequence[Model]) -> tuple[list[Model], list[ClientResult]]:
        out = self.trainer.train_many(jobs, models)
        return [entries for entries, _ in out], [result for _, result in out]

    def mean(self, models: Sequence[Model], weights: np.ndarray) -> Model:
        return [weighted_mean([m[e] for m in models], weights) for e in range(len(models[0]))]

    def evaluate(self, model: Model) -> tuple[float, float]:
        return self.trainer.evaluate(model)

    def fetch(self, model: Model) -> Model:
        return list(model)


class SerialRun:
    """A simulation in this process, with the interface of runtime.driver.RayRun."""

    def __init__(self, config):
        from fedmr_ray.data import load_dataset
        from fedmr_ray.federation import Federation, run_summary
        from fedmr_ray.models import ModelSpec

        data = load_dataset(config)
        spec = ModelSpec(config.model, data.num_classes, data.input_shape)
        trainer = ClientTrainer(spec, data, config.train, config.seed)
        self.federation = Federation(config, spec, data.client_sizes(), SerialBackend(trainer))
        self.summary = run_summary(data, self.federation, ["cpu"], trainer.vectorised)

    def describe(self):
        return self.summary

    def step(self):
        return self.federation.step()

    def global_state(self):
        return self.federation.global_state()
