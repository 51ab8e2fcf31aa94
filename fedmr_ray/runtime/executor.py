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

    def device(self) -> str:
        return str(self.trainer.device)

    def train(self, job: TrainJob, *entries: np.ndarray) -> tuple[np.ndarray | ClientResult, ...]:
        new_entries, result = self.trainer.train(job, entries)
        return (*new_entries, result)

    def mean(self, weights: np.ndarray, *entries: np.ndarray) -> np.ndarray:
        return weighted_mean(entries, weights)

    def evaluate(self, *entries: np.ndarray) -> tuple[float, float]:
        return self.trainer.evaluate(entries)
