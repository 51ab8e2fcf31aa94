"""Checkpoints: a run's state after some round, in its run directory, as one file.

checkpoint.npz holds the server's models, the server state, every client's stored state and a
JSON record (the round, the metrics rows so far, the elapsed time, the configuration). Random
numbers are not stored: each derives from (seed, round, client), so the round is their state.
The file is written under a temporary name and renamed: a run directory never holds half of one.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedmr_ray.algorithms import complete
from fedmr_ray.config import SimulationConfig
from fedmr_ray.errors import ConfigError
from fedmr_ray.federation import Snapshot
from fedmr_ray.results import CHECKPOINT

FILE = CHECKPOINT
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    snapshot: Snapshot[list[np.ndarray]]
    history: list[dict[str, Any]]  # the metrics rows up to snapshot.round
    elapsed_s: float


def write_checkpoint(run_dir: str | Path, checkpoint: Checkpoint, config: SimulationConfig) -> Path:
    snapshot, arrays = checkpoint.snapshot, {}
    for j, model in enumerate(snapshot.models):
        arrays.update({f"model/{j}/{e}": entry for e, entry in enumerate(model)})
    for name, entries in snapshot.server.items():
        arrays.update({f"server/{name}/{e}": entry for e, entry in enumerate(entries)})
    for client, state in snapshot.clients.items():
        for name, entries in state.items():
            arrays.update({f"client/{client}/{name}/{e}": entry for e, entry in enumerate(entries)})
    meta = {
        "format": FORMAT, "round": snapshot.round, "elapsed_s": checkpoint.elapsed_s, "history": checkpoint.history,
        "config": config.results_dict(), "models": [len(m) for m in snapshot.models],
        "server": {name: len(entries) for name, entries in snapshot.server.items()},
        "clients": {str(c): {name: len(e) for name, e in state.items()} for c, state in snapshot.clients.items()},
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = Path(run_dir) / FILE
    tmp = path.with_name(f".{FILE}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def read_checkpoint(run_dir: str | Path, config: SimulationConfig, where: str | None = None) -> Checkpoint:
    """The run directory's checkpoint, checked against the run's configuration; a missing,
    corrupt or mismatched one is a ConfigError. `where`: the run as its messages name it (a URI
    whose local copy `run_dir` is)."""
    path = Path(run_dir) / FILE
    run_dir = where or run_dir
    if not path.is_file():
        raise ConfigError(f"--resume {run_dir}: no {FILE} in it (a run writes one every --checkpoint-every "
                          "rounds and when interrupted)")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
            models = [[z[f"model/{j}/{e}"] for e in range(n)] for j, n in enumerate(meta["models"])]
            server = {name: [z[f"server/{name}/{e}"] for e in range(n)] for name, n in meta["server"].items()}
            clients = {int(c): {name: [z[f"client/{c}/{name}/{e}"] for e in range(n)] for name, n in state.items()}
                       for c, state in meta["clients"].items()}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise ConfigError(f"--resume {run_dir}: {FILE} is corrupt ({type(err).__name__}: {err})") from None
    if meta["config"] != replace(config, algorithm=complete(config.algorithm)).results_dict():
        raise ConfigError(f"--resume {run_dir}: {FILE} does not match the run's config.json "
                          "(it was written by another configuration)")
    if meta["round"] > config.rounds:
        raise ConfigError(f"--resume {run_dir}: the checkpoint is at round {meta['round']}, past --rounds {config.rounds}")
    return Checkpoint(Snapshot(meta["round"], models, server, clients), meta["history"], float(meta["elapsed_s"]))


def check_layout(checkpoint: Checkpoint, entries: list[tuple[str, tuple[int, ...]]], run_dir: str | Path) -> None:
    """The checkpoint's models have the run's model layout (entry count and shapes)."""
    shapes = [tuple(shape) for _, shape in entries]
    for model in checkpoint.snapshot.models:
        if [tuple(entry.shape) for entry in model] != shapes:
            raise ConfigError(f"--resume {run_dir}: {FILE} holds models of another shape than the run's model")
