"""The run directory: config.json, partition.parquet (which samples each client holds),
metrics.parquet (one row per evaluated round), model.pt.

Every file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fedmr_ray.config import SimulationConfig
from fedmr_ray.data import generated_from_seed, load_partition
from fedmr_ray.data.partition import COLUMNS, Partition

METRICS = "metrics.parquet"
CONFIG = "config.json"
MODEL = "model.pt"
PARTITION = "partition.parquet"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


class RunDirectory:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, config: SimulationConfig) -> RunDirectory:
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        _atomic(run.path / CONFIG, lambda p: p.write_text(json.dumps(config.to_dict(), indent=2) + "\n"))
        if not generated_from_seed(config.data):  # there the seed is the split (and 100,000 clients' is large)
            run.write_partition(load_partition(config))  # the same split the run's executors train on
        return run

    def write_partition(self, partition: Partition) -> None:
        """One row per (client, sample): columns client_id, sample_index; `--partition-file` reads it back."""
        table = pa.table(dict(zip(COLUMNS, (partition.client_ids(), partition.sample_index()))))
        _atomic(self.path / PARTITION, lambda p: pq.write_table(table, p))

    def write_metrics(self, rows: Sequence[dict[str, Any]]) -> None:
        _atomic(self.path / METRICS, lambda p: pq.write_table(pa.Table.from_pylist(list(rows)), p))

    def save_model(self, state: dict[str, np.ndarray]) -> None:
        import torch

        tensors = {name: torch.from_numpy(np.array(value)) for name, value in state.items()}
        _atomic(self.path / MODEL, lambda p: torch.save(tensors, p))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return pq.read_table(Path(path) / METRICS).to_pylist()
