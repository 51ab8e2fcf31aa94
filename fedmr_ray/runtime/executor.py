"""An executor: one Ray actor hosting many clients, one resident model, the dataset by reference."""

from __future__ import annotations

import numpy as np
import ray
import torch

from fedmr_ray.algorithms import weighted_mean
from fedmr_ray.config import TrainConfig
from fedmr_ray.data import FederatedDataset
from fedmr_ray.models import ModelSpec
from fedmr_ray.train import ClientResult, ClientTrainer, TrainJob


@ray.remote
class Executor:
    def __init__(self, spec: ModelSpec, data: FederatedDataset, train: TrainConfig, seed: int,
                 threads: int, use_gpu: bool):
        # intra-op threads follow the CPUs the actor holds: more would fight the other executors
        torch.set_num_threads(threads)
        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.trainer = ClientTrainer(spec, data, train, seed, device)

    def describe(self) -> tuple[str, bool]:
        """(the device it trains on, whether it trains several clients at once)."""
        return str(self.trainer.device), self.trainer.vectorised

    def train(self, jobs: list[TrainJob], *entries: np.ndarray) -> tuple[np.ndarray | list[ClientResult], ...]:
        """Jobs[k] trains the model entries[k * L:(k + 1) * L]; returns the new entries, flat in
        the same layout, then the list of results."""
        size = len(entries) // len(jobs)
        trained = self.trainer.train_many(jobs, [entries[k * size:(k + 1) * size] for k in range(len(jobs))])
        return (*[entry for new_entries, _ in trained for entry in new_entries], [result for _, result in trained])

    def mean(self, weights: np.ndarray, *entries: np.ndarray) -> np.ndarray:
        return weighted_mean(entries, weights)

    def evaluate(self, *entries: np.ndarray) -> tuple[float, float]:
        return self.trainer.evaluate(entries)
