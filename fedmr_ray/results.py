"""The run directory: config.json (the configuration and its provenance), partition.parquet (which
samples each client holds), metrics.parquet (one row per round: METRICS_SCHEMA), clients.parquet
(one row per client of each round: CLIENTS_SCHEMA), model.pt.

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
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fedmr_ray.config import SimulationConfig
from fedmr_ray.data.partition import COLUMNS, Partition
from fedmr_ray.errors import SettingError, unwritable
from fedmr_ray.storage import Remote, is_uri

if TYPE_CHECKING:
    from fedmr_ray.federation import RoundRecord
    from fedmr_ray.setup import Setup

METRICS = "metrics.parquet"
CLIENTS = "clients.parquet"
CONFIG = "config.json"
MODEL = "model.pt"
PARTITION = "partition.parquet"
CHECKPOINT = "checkpoint.npz"  # written by checkpoint.py
PROVENANCE = "provenance"  # config.json's key for what is not configuration (a --config file may hold it)


# metrics.parquet: one row per round; the test columns are null where the round was not evaluated
METRICS_SCHEMA = pa.schema([
    ("round", pa.int64()),  # rounds completed, 1-based
    ("algorithm", pa.string()),
    ("stage", pa.string()),  # what the server did: "recombine", "average" or "mutate" (FedMut)
    ("clients", pa.int64()),  # clients sampled (and trained) in the round
    ("samples", pa.int64()),  # their training samples
    ("train_loss", pa.float64()),  # their local training loss, weighted by their samples
    ("test_accuracy", pa.float64()),  # the global model on the test set (evaluated rounds)
    ("test_loss", pa.float64()),
    ("down_bytes", pa.int64()),  # what a deployment sends the cohort (models, server state they read)
    ("up_bytes", pa.int64()),  # what the cohort sends back (models, client states the server combines)
    ("executors", pa.int64()),  # executors that trained in the round
    ("server_s", pa.float64()),  # seconds of the server step
    ("round_s", pa.float64()),  # seconds of the round, evaluation included
    ("elapsed_s", pa.float64()),  # seconds since the run's first round began
    # --client-eval-every rounds: the global model on each client's held-out split, over the
    # clients (mean, std, mean of the worst 10%), and for FedMR each of its K models on each client
    ("client_accuracy_mean", pa.float64()), ("client_accuracy_std", pa.float64()),
    ("client_accuracy_worst10", pa.float64()), ("client_loss_mean", pa.float64()),
    ("models_client_accuracy_mean", pa.float64()), ("models_client_accuracy_std", pa.float64()),
    ("models_client_accuracy_worst10", pa.float64()),
])
# clients.parquet: one row per (round, client): who trained what, where, how long
CLIENTS_SCHEMA = pa.schema([
    ("round", pa.int64()), ("client_id", pa.int64()), ("samples", pa.int64()), ("steps", pa.int64()),
    ("train_loss", pa.float64()),  # mean cross-entropy over its local steps
    ("train_s", pa.float64()),  # wall seconds of its training (shared with others where vectorised)
    ("executor", pa.string()),  # which executor trained it ("serial" without Ray)
])


def metrics_row(record: RoundRecord, algorithm: str, elapsed: float) -> dict[str, Any]:
    """A round's row of metrics.parquet (every column; None where the round has no value)."""
    return {
        **dict.fromkeys(METRICS_SCHEMA.names), "round": record.round, "algorithm": algorithm, "stage": record.stage, "clients": len(record.clients),
        "samples": sum(result.num_samples for result in record.clients), "train_loss": record.train_loss,
        "test_accuracy": record.test_accuracy, "test_loss": record.test_loss, "down_bytes": record.down_bytes,
        "up_bytes": record.up_bytes, "executors": record.executors, "server_s": record.server_s,
        "round_s": record.round_s, "elapsed_s": elapsed, **(record.client_eval or {}),
    }


def evaluated(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the rounds whose global model was evaluated."""
    return [row for row in rows if row.get("test_accuracy") is not None]


class ClientLog:
    """The rows of clients.parquet, column by column."""

    def __init__(self, table: pa.Table | None = None):
        self.columns: dict[str, list] = {name: [] for name in CLIENTS_SCHEMA.names}
        if table is not None:
            for name in self.columns:
                self.columns[name] = table.column(name).to_pylist()

    def add(self, record: RoundRecord) -> None:
        for result in record.clients:
            for name, value in zip(CLIENTS_SCHEMA.names, (record.round, result.client, result.num_samples,
                                                          result.steps, result.loss, result.seconds, result.executor)):
                self.columns[name].append(value)

    def table(self) -> pa.Table:
        return pa.table(self.columns, schema=CLIENTS_SCHEMA)

    @classmethod
    def read(cls, run_dir: Path, up_to_round: int) -> ClientLog:
        """The rows a run directory holds up to a round (those after it are a later, lost part of
        the run); none where it has no clients.parquet."""
        path = Path(run_dir) / CLIENTS
        if not path.is_file():
            return cls()
        table = pq.read_table(path, use_threads=False)
        return cls(table.filter(pc.less_equal(table.column("round"), up_to_round)))


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What `simulate` returns: the run's metrics and models. It is also the sequence of its rows
    (`result[-1]`, `for row in result`), one dict per round as in metrics.parquet.

    >>> result = simulate(config)
    >>> result.final["test_accuracy"], result.metrics.to_pandas(), result.model()
    """

    config: SimulationConfig
    rows: list[dict[str, Any]]  # one per round, as in metrics.parquet
    clients: pa.Table  # one row per client of each round, as clients.parquet
    run_dir: str | None  # where it was written (None without config.output)
    global_state: dict[str, np.ndarray] | None = None  # the final global model's entries
    server_states: list[dict[str, np.ndarray]] | None = None  # the server's final models (keep_models=True)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]

    def __iter__(self):
        return iter(self.rows)

    @property
    def metrics(self) -> pa.Table:
        """metrics.parquet's table (METRICS_SCHEMA)."""
        return pa.Table.from_pylist(self.rows, schema=METRICS_SCHEMA)

    def to_pandas(self):
        """The metrics as a pandas DataFrame (pandas must be installed)."""
        return self.metrics.to_pandas()

    @property
    def evaluated(self) -> list[dict[str, Any]]:
        """The rows of the evaluated rounds (every eval_every rounds and the last)."""
        return evaluated(self.rows)

    @property
    def final(self) -> dict[str, Any]:
        """The last evaluated round's row."""
        return self.evaluated[-1]

    def model(self):
        """The final global model as a torch nn.Module (from model.pt where the run ended before)."""
        if self.global_state is not None:
            return build_module(self.config, self.global_state)
        if self.run_dir is None:
            raise ValueError("this result holds no model: the run wrote no run directory")
        return load_model(self.run_dir)

    def models(self):
        """The server's final models as nn.Modules: FedMR's K, one for the averaging algorithms;
        `simulate(..., keep_models=True)` keeps them."""
        if self.server_states is None:
            raise ValueError("the server's models were not kept: run simulate(..., keep_models=True)")
        return [build_module(self.config, state) for state in self.server_states]


def build_module(config: SimulationConfig, state: dict[str, Any]):
    """The configuration's model (an nn.Module) holding these entries (arrays or tensors)."""
    import torch

    from fedmr_ray.data.catalog import dataset_spec
    from fedmr_ray.models import model_spec

    module = model_spec(config.model, dataset_spec(config.data.dataset)).build()
    module.load_state_dict({name: torch.as_tensor(np.asarray(value)) for name, value in state.items()})
    return module.eval()


def load_model(run_dir: str | Path):
    """A run directory's final global model (model.pt) as the nn.Module it was trained as."""
    import io

    import torch

    state = torch.load(io.BytesIO(read_file(run_dir, MODEL)), weights_only=True)
    return build_module(read_config(run_dir), state)


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
    # tried inside it where it exists, else in its nearest existing parent (a write, not permission bits,
    # which say yes to root on /proc)
    problem = unwritable(path / "run")
    _require(problem is None, output, f"cannot {'write in' if path.exists() else 'create'} it ({problem})")


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

    def result(self, config: SimulationConfig) -> SimulationResult:
        """The result of the finished run it holds (its model read from model.pt when asked for)."""
        return SimulationResult(config, self.metrics(), read_clients(self.path) if (self.path / CLIENTS).is_file()
                                else ClientLog().table(), self.where)

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).is_file()

    def clear(self) -> None:
        """Remove what a run wrote here (a start that never reached a checkpoint: all of it is
        recomputed); anything else stays."""
        for path in self.path.iterdir() if self.path.is_dir() else ():
            if path.name in (CONFIG, METRICS, CLIENTS, PARTITION, MODEL, CHECKPOINT) or path.name.startswith("."):
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

    def write_metrics(self, rows: Sequence[dict[str, Any]], clients: ClientLog | None = None) -> None:
        """metrics.parquet, and clients.parquet where `clients` is given (written first: it holds
        at least the rounds metrics.parquet holds)."""
        if clients is not None:
            table = clients.table()
            self._write(CLIENTS, lambda p: pq.write_table(table, p))
        self._write(METRICS, lambda p: pq.write_table(pa.Table.from_pylist(list(rows), schema=METRICS_SCHEMA), p))

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


def _read_table(run_dir: str | Path, name: str) -> pa.Table:
    # One thread: pyarrow 26's threaded read of a buffer aborted the process at exit about one time
    # in eight ("terminate called without an active exception", exit 134), after the work was done.
    return pq.read_table(pa.BufferReader(read_file(run_dir, name)), use_threads=False)


def read_clients(run_dir: str | Path) -> pa.Table:
    """A run directory's clients.parquet: one row per client of each round (CLIENTS_SCHEMA)."""
    return _read_table(run_dir, CLIENTS)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """A run directory's metrics.parquet, one dict per round (METRICS_SCHEMA)."""
    return _read_table(run_dir, METRICS).to_pylist()
