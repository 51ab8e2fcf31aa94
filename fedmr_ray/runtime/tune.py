"""A sweep's trials on Ray Tune.

Each trial is a function trainable (`run_trial`) that runs the simulation into the trial's run
directory, with its executors in the trial's placement group: an empty head bundle for the
trial's driver (it waits on its coordinator, which takes no CPU) and one bundle per executor, so
that as many trials run at once as the cluster holds, and pending ones are demand an autoscaler
sees. A trial whose node goes away fails and Tune starts it again, and the trial goes on from
its own last checkpoint in its run directory: its metrics are those of an undisturbed run. For the
same reason a sweep resumed is a new Tune run of its unfinished trials, in the plan's order (the
plan, sweep.json, and the run directories hold all there is to go on from); <sweep>/tune is only
Tune's scratch.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from fedmr_ray.results import RunDirectory, read_metrics
from fedmr_ray.runtime.resources import DRIVER_RESOURCE, DRIVER_SHARE
from fedmr_ray.signals import restored
from fedmr_ray.sweep import Resources, Sweep, Trial

TUNE_DIR = "tune"
MAX_FAILURES = 3  # a trial's restarts (its node lost, its executors killed) before it counts as failed
DONE = "finished"


def placement(resources: Resources, cluster: dict[str, float]) -> tune.PlacementGroupFactory:
    """The trial's bundles: its driver's (a share of the head's DRIVER_RESOURCE where the cluster
    offers it, else nothing), then one per executor."""
    executor = {"CPU": resources.cpus_per_executor}
    if resources.gpus_per_executor:
        executor["GPU"] = resources.gpus_per_executor
    driver = {DRIVER_RESOURCE: DRIVER_SHARE} if cluster.get(DRIVER_RESOURCE) else {}
    return tune.PlacementGroupFactory([driver] + [dict(executor) for _ in range(resources.executors)],
                                      strategy="PACK")


def run_trial(params: dict[str, Any]) -> None:
    """One trial: its simulation from the start, or from its run directory's checkpoint (a trial
    that Tune starts again after a failure, or one of a sweep resumed); a finished one only reports."""
    from fedmr_ray.api import simulate

    trial = Trial.from_dict(params["trial"])
    config, run_dir = trial.config, trial.run_dir
    if trial.finished():
        tune.report({"round": config.rounds, "accuracy": read_metrics(run_dir)[-1]["test_accuracy"], DONE: True})
        return
    resume = run_dir if RunDirectory(run_dir).has_checkpoint() else None
    if resume is None:
        RunDirectory(run_dir).clear()  # a start that never reached a checkpoint: all of it is recomputed
    accuracy = [math.nan]

    def on_round(record, elapsed: float) -> None:
        if record.test_accuracy is not None:
            accuracy[0] = record.test_accuracy
        tune.report({"round": record.round, "accuracy": accuracy[0], "elapsed_s": elapsed,
                     DONE: record.round == config.rounds})

    simulate(config, resume=resume, on_round=on_round)


@dataclass
class Progress(tune.Callback):
    """The sweep at a glance: trials done, running, pending, and each running trial's round and
    accuracy; a line when a trial starts, ends or fails, and a status line at most every
    `every` seconds."""

    total: int
    every: float = 30.0
    rounds: dict[str, tuple[int, float]] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    _last: float = 0.0

    def _say(self, text: str) -> None:
        print(f"fedmr-ray sweep: {text}", file=sys.stderr, flush=True)

    @staticmethod
    def _name(trial) -> str:
        return trial.config["trial"]["name"]

    def status(self) -> str:
        pending = self.total - len(self.done) - len(self.running) - len(self.failed)
        shown = "; ".join(f"{name} round {r} acc {a:.4f}" if not math.isnan(a) else f"{name} round {r}"
                          for name, (r, a) in sorted(self.rounds.items()) if name in self.running)
        return (f"{len(self.done)}/{self.total} done, {len(self.running)} running, {pending} pending"
                + (f", {len(self.failed)} failed" if self.failed else "") + (f": {shown}" if shown else ""))

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(self._name(trial))
        self._say(f"started {self._name(trial)} ({self.status()})")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.rounds[self._name(trial)] = (result.get("round", 0), result.get("accuracy", math.nan))
        if time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self._say(self.status())

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        name = self._name(trial)
        self.running.discard(name)
        self.done.add(name)
        _, accuracy = self.rounds.get(name, (0, math.nan))
        self._say(f"finished {name}: final accuracy {accuracy:.4f} ({self.status()})")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        name = self._name(trial)
        self.running.discard(name)
        self.failed.add(name)
        self._say(f"failed {name} after {MAX_FAILURES} restarts; its error: {trial.error_file} ({self.status()})")


@dataclass(frozen=True)
class Outcome:
    finished: list[str]
    unfinished: list[str]  # interrupted or failed: `fedmr-ray sweep --resume` goes on with them


def run_sweep(sweep: Sweep, directory: Path, *, max_concurrent: int | None = None,
              progress: tune.Callback | None = None) -> Outcome:
    """Run the sweep's unfinished trials (all of them at first; a resumed sweep's others), in its
    plan's order, on the Ray this process is connected to; `sweep` as read_plan(directory) gives
    it. Ctrl-C (and SIGTERM, which the command turns into it) stops it: trials keep their
    checkpoints."""
    # a trial's results go to its run directory: no TensorBoard, CSV or JSON loggers of Tune's
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    todo = [trial.to_dict() for trial in sweep.trials if not trial.finished()]
    if todo:
        tuner = tune.Tuner(
            tune.with_resources(run_trial, placement(sweep.resources, ray.cluster_resources())),
            param_space={"trial": tune.grid_search(todo)},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True,
                                        trial_name_creator=lambda t: t.config["trial"]["name"],
                                        trial_dirname_creator=lambda t: t.config["trial"]["name"]),
            run_config=tune.RunConfig(name=TUNE_DIR, storage_path=str(directory.absolute()), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                                      callbacks=[progress] if progress else None))
        # Tune's own banner hidden (the progress view is `progress`); its SIGINT handler not left behind
        with contextlib.redirect_stdout(io.StringIO()), restored(signal.SIGINT):
            tuner.fit()
    finished = [t.name for t in sweep.trials if t.finished()]
    return Outcome(finished, [t.name for t in sweep.trials if t.name not in finished])


