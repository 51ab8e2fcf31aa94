"""Federated algorithms: pure server-side logic over lists of entries; no Ray here."""

from __future__ import annotations

from collections.abc import Sequence

from fedmr_ray.algorithms.base import Algorithm, ServerStep, weighted_mean
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.algorithms.fedmr import FedMR
from fedmr_ray.config import AlgorithmConfig
from fedmr_ray.recombine import entry_groups

__all__ = ["Algorithm", "FedAvg", "FedMR", "ServerStep", "make_algorithm", "weighted_mean"]


def make_algorithm(config: AlgorithmConfig, names: Sequence[str]) -> Algorithm:
    if config.name == "fedmr":
        return FedMR(entry_groups(names, config.granularity), config.first_stage_bound)
    if config.name == "fedavg":
        return FedAvg()
    raise ValueError(f"unknown algorithm {config.name!r}")  # validate() refuses it before this
