"""The run directory: config.json (the configuration and its provenance), partition.parquet (which
samples each client holds), metrics.parquet (one row per evaluated round), model.pt.

Every file is written to a temporary name and renamed, so a reader never sees half a file. A run
directory may be a URI (s3://bucket/run, ...: storage.py): it is then worked on in a local copy,
each file uploaded as soon as it is written.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fedmr_ray.config import SimulationConfig
from fedmr_ray.data.partition import COLUMNS, Partition
from fedmr_ray.errors import SettingError
from fedmr_ray.storage import Remote, is_uri

if TYPE_CHECKING:
    from fedmr_ray.setup import Setup

METRICS = "metrics.parquet"
CONFIG = "config.json"
MODEL = "model.pt"
PARTITION = "partition.parquet"
CHECKPOINT = "checkpoint.npz"  # written by checkpoint.py
PROVENANCE = "provenance"  # config.json's key for what is not configuration (a --config file may hold it)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def check_output_dir(output: str) -> None:
    """The run directory must be creatable and must not already hold a run (nothing is overwritten)."""
    if is_uri(output):
        Remote.open(output, "--output").check_writable_destination()
        return
    path = Path(output)
    if path.exists():
        _require(path.is_dir(), output, "exists and is not a directory")
        _require(not any(path.iterdir()), output, "directory is not empty; choose a new path or remove it")
        _require(os.access(path, os.W_OK), output, "directory is not writable")
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    _require(parent.is_dir() and os.access(parent, os.W_OK), output,
             f"cannot create it ({parent} is not a writable directory)")


def _require(ok: bool, output: str, problem: str) -> None:
    if not ok:
        raise SettingError("output", "--output", output, problem, quote=False)


def _version(package: str, module: str) -> str | None:
    """The version of a package: its module's own where imported (torch's names its build, such as
    2.14.1+cu130), else the installed distribution's."""
    if module in sys.modules and isinstance(getattr(sys.modules[module], "__version__", None), str):
        return sys.modules[module].__version__
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def provenance(backend: str, executors: int, devices: Sequence[str]) -> dict[str, Any]:
    """What reproduces a run besides its configuration: the versions it ran with, the command,
    when it started, and where (serial, or on Ray with how many executors on which devices)."""
    return {
        "fedmr_ray": _version("fedmr-ray", "fedmr_ray"), "torch": _version("torch", "torch"),
        "ray": _version("ray", "ray"), "numpy": _version("numpy", "numpy"), "python": platform.python_version(),
        "command": list(sys.argv), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started_s": time.time(),
        "backend": backend, "executors": executors, "devices": sorted(set(devices)),
    }


class RunDirectory:
    """A run's folder. `remote`: the URI it belongs to, `path` then being a local copy whose files
    are uploaded as they are written (`close` removes the copy)."""

    def __init__(self, path: str | Path, remote: Remote | None = None):
        self.path, self.remote = Path(path), remote

    @classmethod
    def at(cls, where: str | Path, option: str = "--output") -> RunDirectory:
        """The run directory at a local path, or at a URI (what is there copied into a local folder)."""
        if not is_uri(str(where)):
            return cls(where)
        remote = Remote.open(str(where), option)
        local = Path(tempfile.mkdtemp(prefix="fedmr-ray-run-"))
        try:
            remote.download(local)
        except BaseException:
            shutil.rmtree(local, ignore_errors=True)
            raise
        return cls(local, remote)

    @property
    def where(self) -> str:
        """Where the run is, as the user named it."""
        return self.remote.uri if self.remote else str(self.path)

    def publish(self, name: str) -> None:
        """A file just written into the folder, uploaded where the run is behind a URI."""
        if self.remote is not None:
            self.remote.upload(self.path / name, name)

    def _write(self, name: str, write) -> None:
        _atomic(self.path / name, write)
        self.publish(name)

    def close(self) -> None:
        """Remove the local copy of a URI's run (a local run directory stays as it is)."""
        if self.remote is not None:
            shutil.rmtree(self.path, ignore_errors=True)

    def metrics(self) -> list[dict[str, Any]]:
        """Its metrics rows so far (none where no round has been evaluated yet)."""
        try:
            return read_metrics(self.path)
        except (OSError, ValueError):
            return []

    def finished(self, rounds: int) -> bool:
        """Whether it holds a run finished at `rounds` (every round, and the final model)."""
        rows = self.metrics()
        return bool(rows) and rows[-1]["round"] == rounds and (self.path / MODEL).is_file()

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).is_file()

    def clear(self) -> None:
        """Remove what a run wrote here (a start that never reached a checkpoint: all of it is
        recomputed); anything else stays."""
        for path in self.path.iterdir() if self.path.is_dir() else ():
            if path.name in (CONFIG, METRICS, PARTITION, MODEL, CHECKPOINT) or path.name.startswith("."):
                path.unlink()
                if self.remote is not None and not path.name.startswith("."):
                    self.remote.delete(path.name)

    @classmethod
    def create(cls, setup: Setup, origin: dict[str, Any]) -> RunDirectory:
        """The run directory of a run being set up: its config.json (with `origin`, its
        provenance) and, where the data is not generated from the seed, its partition."""
        run = cls.at(setup.config.output)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(setup.config, origin)
        if setup.partition is not None:  # the seed is the split of generated data (and 100,000 clients' is large)
            run.write_partition(setup.partition)
        return run

    def write_config(self, config: SimulationConfig, origin: dict[str, Any]) -> None:
        record = {**config.to_dict(), PROVENANCE: origin}
        self._write(CONFIG, lambda p: p.write_text(json.dumps(record, indent=2) + "\n"))

    def resumed(self, config: SimulationConfig, origin: dict[str, Any], from_round: int) -> None:
        """config.json after a resume: the rounds the run now goes to, and the resume in its provenance."""
        record = json.loads((self.path / CONFIG).read_text())
        history = record.get(PROVENANCE, {})
        history.setdefault("resumed", []).append({**origin, "from_round": from_round, "rounds": config.rounds})
        self.write_config(config, history)

    def write_partition(self, partition: Partition) -> None:
        """One row per (client, sample): columns client_id, sample_index; `--partition-file` reads it back."""
        table = pa.table(dict(zip(COLUMNS, (partition.client_ids(), partition.sample_index()))))
        self._write(PARTITION, lambda p: pq.write_table(table, p))

    def write_metrics(self, rows: Sequence[dict[str, Any]]) -> None:
        self._write(METRICS, lambda p: pq.write_table(pa.Table.from_pylist(list(rows)), p))

    def save_model(self, state: dict[str, np.ndarray]) -> None:
        import torch

        tensors = {name: torch.from_numpy(np.array(value)) for name, value in state.items()}
        self._write(MODEL, lambda p: torch.save(tensors, p))


def read_file(run_dir: str | Path, name: str) -> bytes:
    """A file of a run directory, local or behind a URI."""
    if is_uri(str(run_dir)):
        return Remote.open(str(run_dir), "run directory").read_bytes(name)
    return (Path(run_dir) / name).read_bytes()


def read_config(run_dir: str | Path) -> SimulationConfig:
    """A run directory's configuration (its provenance left out)."""
    raw = json.loads(read_file(run_dir, CONFIG))
    raw.pop(PROVENANCE, None)
    return SimulationConfig.from_dict(raw)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    # One thread: pyarrow 26's threaded read of a buffer aborted the process at exit about one time
    # in eight ("terminate called without an active exception", exit 134), after the work was done.
    table = pq.read_table(pa.BufferReader(read_file(run_dir, METRICS)), use_threads=False)
    return table.to_pylist()
