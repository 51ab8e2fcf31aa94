"""`simulate(config)`: the Python entry point; the CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fedmr_ray.algorithms import complete
from fedmr_ray.checkpoint import Checkpoint, check_layout, read_checkpoint, write_checkpoint
from fedmr_ray.config import SimulationConfig
from fedmr_ray.errors import SettingError
from fedmr_ray.federation import RoundRecord
from fedmr_ray.models import custom_source
from fedmr_ray.results import (
    CHECKPOINT,
    CONFIG,
    ClientLog,
    RunDirectory,
    SimulationResult,
    metrics_row,
    provenance,
    read_config,
)
from fedmr_ray.setup import prepare
from fedmr_ray.signals import Terminated, held
from fedmr_ray.tracking import TensorBoard


class Interrupted(Exception):
    """A run stopped by Ctrl-C (or SIGTERM: `terminated`) after writing a checkpoint of its last
    completed round."""

    def __init__(self, round_done: int, run_dir: str, terminated: bool = False):
        super().__init__(f"interrupted after round {round_done}; checkpoint written to {run_dir}")
        self.round, self.run_dir, self.terminated = round_done, run_dir, terminated


def simulate(
    config: SimulationConfig,
    *,
    serial: bool = False,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_round: Callable[[RoundRecord, float], None] | None = None,
    resume: str | Path | None = None,
    resume_if_exists: bool = False,
    keep_models: bool = False,
    tensorboard: str | Path | None = None,
) -> SimulationResult:
    """Run a simulation and return its result (results.SimulationResult): the metrics, one row per
    round as in metrics.parquet, the clients' rows as in clients.parquet, the run directory, the
    final global model, and with `keep_models` the server's final models (FedMR's K).

    On Ray by default (a Ray already initialised in this process, else `config.runtime.address` or
    RAY_ADDRESS, else a local one); `serial=True` runs the same loop in this process without Ray.
    With `config.output` set, the run directory gets config.json, metrics.parquet, model.pt, and
    checkpoint.npz every `config.checkpoint_every` rounds and on Ctrl-C (which then raises
    `Interrupted`). `resume` continues the run in that directory from its checkpoint: the
    metrics come out as those of an uninterrupted run. `resume_if_exists`: where `config.output`
    already holds this configuration's run (a retried job's own), go on from its checkpoint, or
    return its metrics if it finished; a start that never reached a checkpoint starts over. A
    configuration that cannot run is a ConfigError, raised before anything starts or is written.
    `config.output` and `resume` may be URIs (s3://bucket/run, ...), as may the data directory.
    `tensorboard`: a folder that also gets each round's metrics as TensorBoard scalars (tracking.py).
    """
    with contextlib.ExitStack() as local_copies:  # of run directories behind URIs: removed at the end
        resumed = RunDirectory.at(resume, "--resume") if resume is not None else None
        if resumed is None and resume_if_exists and config.output is not None:
            resumed = _own_run(config)
            if resumed is not None:
                local_copies.callback(resumed.close)
            if resumed is not None and resumed.finished(config.rounds):
                return resumed.result(config)
            if resumed is not None and not resumed.has_checkpoint():
                resumed.clear()  # a start that never reached a checkpoint: it starts over
                resumed = None
        elif resumed is not None:
            local_copies.callback(resumed.close)
        run_name = str(config.output).rstrip("/").rsplit("/", 1)[-1] if config.output else None
        tracker = TensorBoard(str(tensorboard), run_name) if tensorboard is not None else None
        if tracker is not None:
            local_copies.callback(tracker.close)
        return _simulate(config, serial, on_start, on_round, resumed, local_copies, keep_models, tracker)


def _simulate(config: SimulationConfig, serial: bool, on_start: Callable[[dict[str, Any]], None] | None,
              on_round: Callable[[RoundRecord, float], None] | None, resumed: RunDirectory | None,
              local_copies: contextlib.ExitStack, keep_models: bool, tracker: TensorBoard | None) -> SimulationResult:
    setup = prepare(config, resuming=resumed is not None)
    config = setup.config
    checkpoint = read_checkpoint(resumed.path, config, resumed.where) if resumed is not None else None
    if serial:
        from fedmr_ray.serial import SerialRun, pinned_threads

        session, make_run = pinned_threads(config.runtime.threads), SerialRun
    else:
        from fedmr_ray.runtime.driver import RayRun, ray_cluster

        # a custom model's module of this machine's: sent to the workers to import
        shipped = [path for path in [custom_source(config.model)] if path is not None]
        session, make_run = ray_cluster(config.runtime.address, config.runtime.connect_timeout, shipped), RayRun
    history: list[dict[str, Any]] = list(checkpoint.history) if checkpoint else []
    clients = ClientLog.read(resumed.path, checkpoint.snapshot.round) if checkpoint else ClientLog()
    offset = checkpoint.elapsed_s if checkpoint else 0.0
    with session:
        run = make_run(setup)
        summary = run.describe()  # the executors' start-up errors surface here, before anything is written
        origin = provenance("serial" if serial else "ray", summary["num_executors"], summary["devices"])
        if checkpoint:
            check_layout(checkpoint, summary["entries"], resumed.where)
            run.restore(checkpoint.snapshot)
            run_dir = resumed
            run_dir.resumed(config, origin, checkpoint.snapshot.round)
        else:
            run_dir = RunDirectory.create(setup, origin) if config.output else None
            if run_dir is not None:
                local_copies.callback(run_dir.close)
        del setup  # on Ray the data now lives in the object store: no copy of it held here
        if on_start:
            on_start(summary)
        start = time.perf_counter() - offset

        written = [len(history)]  # rounds in the run directory's metrics files

        def write() -> None:
            if run_dir and written[0] != len(history):
                run_dir.write_metrics(history, clients)
                written[0] = len(history)

        def note(record: RoundRecord) -> float:
            elapsed = time.perf_counter() - start
            history.append(metrics_row(record, config.algorithm.name, elapsed))
            clients.add(record)
            if tracker is not None:
                tracker.log(history[-1])
            if record.test_accuracy is not None:  # the files follow the evaluations (and the checkpoints)
                write()
            if on_round:
                on_round(record, elapsed)
            return elapsed

        def save() -> int:
            write()
            state = Checkpoint(run.snapshot(), list(history), time.perf_counter() - start)
            write_checkpoint(run_dir.path, state, config)
            run_dir.publish(CHECKPOINT)
            return state.snapshot.round

        first = checkpoint.snapshot.round if checkpoint else 0
        for _ in range(first, config.rounds):
            try:
                record = run.step()
                with held():  # the round's metrics and checkpoint are written whole, then a signal counts
                    note(record)
                    if run_dir and config.checkpoint_every and record.round % config.checkpoint_every == 0:
                        save()
            except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM where the command line asked (signals.py)
                if run_dir is None:
                    raise
                # the round in flight, where it can finish (a second signal aborts), or the round that had
                # just completed when the signal came: noted unless it already was
                finished = run.complete()
                if finished is not None and finished.round > (history[-1]["round"] if history else 0):
                    note(finished)
                raise Interrupted(save(), run_dir.where, isinstance(stop, Terminated)) from None
        final = run.global_state() if first < config.rounds else None
        models = run.server_models() if keep_models and first < config.rounds else None
        if run_dir and final is not None:
            with held():
                run_dir.save_model(final)
    return SimulationResult(config, history, clients.table(), run_dir.where if run_dir else None, final, models)


def _own_run(config: SimulationConfig) -> RunDirectory | None:
    """The run directory at config.output where it holds a run of this configuration (where and
    how long it runs aside); None where there is nothing there; a ConfigError where it holds
    another configuration's run or files that are not a run's."""
    run = RunDirectory.at(config.output)
    try:
        if not run.path.is_dir() or not any(run.path.iterdir()):
            run.close()
            return None
        _require_own(run, config)
    except BaseException:
        run.close()
        raise
    return run


def _require_own(run: RunDirectory, config: SimulationConfig) -> None:
    def refuse(problem: str) -> SettingError:
        return SettingError("output", "--output", config.output, problem, quote=False)

    if not (run.path / CONFIG).is_file():
        raise refuse("holds files that are not a fedmr-ray run's; --resume-if-exists goes on only with a run "
                     "of the same configuration")
    try:
        saved = read_config(run.path)
    except (OSError, ValueError) as err:
        raise refuse(f"its config.json is unreadable ({type(err).__name__})") from None
    if saved.results_dict() != dataclasses.replace(config, algorithm=complete(config.algorithm)).results_dict():
        raise refuse("holds the run of another configuration; --resume-if-exists goes on only with a run of the "
                     "same configuration")
