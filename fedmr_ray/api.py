"""`simulate(config)`: the Python entry point; the CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from fedmr_ray.config import SimulationConfig
from fedmr_ray.federation import RoundRecord
from fedmr_ray.results import RunDirectory


def simulate(
    config: SimulationConfig,
    *,
    serial: bool = False,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_round: Callable[[RoundRecord, float], None] | None = None,
) -> list[dict[str, Any]]:
    """Run a simulation and return its history: one row per evaluated round, as in metrics.parquet.

    On Ray by default (a Ray already initialised in this process, else `config.runtime.address` or
    RAY_ADDRESS, else a local one); `serial=True` runs the same loop in this process without Ray.
    With `config.output` set, the run directory gets config.json, metrics.parquet and model.pt.
    """
    config.validate()
    if serial:
        from fedmr_ray.serial import SerialRun

        session, make_run = contextlib.nullcontext(), SerialRun
    else:
        from fedmr_ray.runtime.driver import RayRun, ray_cluster

        session, make_run = ray_cluster(config.runtime.address), RayRun
    history: list[dict[str, Any]] = []
    with session:
        run = make_run(config)
        summary = run.describe()  # setup errors surface here, before anything is written
        run_dir = RunDirectory.create(config.output, config) if config.output else None
        if on_start:
            on_start(summary)
        start = time.perf_counter()
        for _ in range(config.rounds):
            record = run.step()
            elapsed = time.perf_counter() - start
            if record.test_accuracy is not None:
                history.append({
                    "round": record.round, "algorithm": config.algorithm.name, "stage": record.stage,
                    "test_accuracy": record.test_accuracy, "test_loss": record.test_loss,
                    "train_loss": record.train_loss, "executors": record.executors, "elapsed_s": elapsed,
                })
                if run_dir:
                    run_dir.write_metrics(history)
            if on_round:
                on_round(record, elapsed)
        if run_dir:
            run_dir.save_model(run.global_state())
    return history
