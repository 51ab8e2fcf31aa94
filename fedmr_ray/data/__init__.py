"""Datasets: each a `FederatedDataset`, built from the configuration."""

from __future__ import annotations

from fedmr_ray.config import SimulationConfig
from fedmr_ray.data.dataset import FederatedDataset
from fedmr_ray.data.synthetic import make_synthetic

__all__ = ["FederatedDataset", "load_dataset", "make_synthetic"]


def load_dataset(config: SimulationConfig) -> FederatedDataset:
    data = config.data
    if data.dataset == "synthetic":
        return make_synthetic(config.clients, config.seed, data.synthetic_alpha, data.synthetic_beta)
    raise ValueError(f"unknown dataset {data.dataset!r}")  # validate() refuses it before this
