"""`fedmr-ray sweep FILE --output DIR`: every trial of a sweep file on Ray Tune; `--resume DIR` goes on
with an interrupted one. At the end, the report of `fedmr-ray report DIR`."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from fedmr_ray.config import ConfigError, SimulationConfig
from fedmr_ray.results import check_output_dir
from fedmr_ray.storage import is_uri
from fedmr_ray.setup import check
from fedmr_ray.sweep import PLAN, Sweep, check_data, plan, read_plan, read_sweep


class SweepStopped(Exception):
    """A sweep that ended with trials unfinished: interrupted (code 130, 143 for SIGTERM), or with
    trials that failed every restart (code 1)."""

    def __init__(self, directory: Path, unfinished: list[str], code: int):
        self.directory, self.unfinished, self.code = directory, unfinished, code
        why = "interrupted" if code != 1 else "stopped with failed trials"
        super().__init__(f"{why}: {len(unfinished)} trial(s) unfinished ({', '.join(unfinished[:3])}"
                         f"{', ...' if len(unfinished) > 3 else ''}); their checkpoints are kept. Resume with: "
                         f"fedmr-ray sweep --resume {shlex.quote(str(directory))}")


def run_planned(sweep: Sweep, directory: Path, *, address: str | None, max_concurrent: int | None) -> None:
    """Run the sweep's unfinished trials on Ray (a local one by default), then write and print its
    report. SIGTERM stops it as Ctrl-C does: trials keep their checkpoints."""
    from fedmr_ray.sweep_report import report_sweep
    from fedmr_ray.runtime.driver import ray_cluster
    from fedmr_ray.runtime.tune import Progress, run_sweep

    terminated = []

    def on_sigterm(signum, frame) -> None:
        terminated.append(signum)
        os.kill(os.getpid(), signal.SIGINT)

    progress = Progress(len(sweep.trials), done={t.name for t in sweep.trials if t.finished()})
    started = time.perf_counter()
    with ray_cluster(address):
        previous = signal.signal(signal.SIGTERM, on_sigterm)  # after Ray's start, which installs its own
        try:
            outcome = run_sweep(sweep, directory, max_concurrent=max_concurrent, progress=progress)
        finally:
            signal.signal(signal.SIGTERM, previous)
    print(f"fedmr-ray sweep: {len(outcome.finished)}/{len(sweep.trials)} trials finished in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    if outcome.finished:
        print("\n".join(report_sweep(directory)))
    if outcome.unfinished:
        code = 143 if terminated else (1 if progress.failed else 130)
        raise SweepStopped(directory, outcome.unfinished, code)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        seeds = [-1]
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {text!r}: must be distinct integers >= 0 separated by commas, e.g. 0,1,2")
    return seeds


def run_seeds(config: SimulationConfig, seeds: list[int]) -> None:
    """`simulate --seeds`: the configuration run once per seed, as a sweep into its output directory."""
    check(config)  # its errors named by their flags, before the sweep is planned
    directory = sweep_folder(config.output, "--output")
    check_output_dir(str(directory))
    base = config.to_dict()
    runtime, _, _ = base.pop("runtime"), base.pop("output"), base.pop("seed")
    if not config.checkpoint_every:
        base.pop("checkpoint_every")  # a sweep's default
    resources = {"executors": runtime["num_actors"] or 1, "cpus_per_executor": runtime["cpus_per_actor"],
                 "gpus_per_executor": runtime["gpus_per_actor"]}
    sweep = plan({"base": base, "grid": {"seed": seeds}, "resources": resources}, "--seeds", directory.absolute())
    check_data(sweep)
    sweep.write(directory)
    run_planned(sweep, directory, address=config.runtime.address, max_concurrent=None)


def sweep_folder(text: str, option: str) -> Path:
    """A sweep's directory: a local folder (every trial's driver writes into it); on Kubernetes a
    ReadWriteMany volume. A URI is refused."""
    if is_uri(text):
        raise ConfigError(f"{option} {text}: a sweep's directory is a folder (on Kubernetes, a ReadWriteMany "
                          "volume: k8s render --sweep mounts one); URIs are for fedmr-ray simulate --output")
    return Path(text)


def sweep_command(
    file: Annotated[Path | None, typer.Argument(help="The sweep file (TOML, JSON or YAML): \\[base], \\[grid], "
                                                     "\\[\\[runs]], \\[resources].", show_default=False)] = None,
    output: Annotated[str | None, typer.Option(help="The sweep's directory (a local folder): a run directory per trial, named "
                                                     "after its values; the plan; the report \\[default: "
                                                     "runs/sweep-<timestamp>].", show_default=False)] = None,
    resume: Annotated[str | None, typer.Option(help="Go on with the sweep in this directory: finished trials "
                                                     "stay, the others run in the plan's order, interrupted "
                                                     "ones from their checkpoints.",
                                                show_default=False)] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster to connect to \\[default: RAY_ADDRESS, else a "
                                                     "local Ray].", show_default=False)] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="At most this many trials at once \\[default: as many "
                                                            "as the cluster's resources hold].", min=1,
                                                       show_default=False)] = None,
    resume_if_exists: Annotated[bool, typer.Option(help="Where --output already holds this sweep (a retried "
                                                        "job's own), go on with it; else start it. k8s render "
                                                        "sets it.")] = False,
) -> None:
    """Run an experiment table: every trial of a sweep file, as many at once as the cluster holds, on
    Ray Tune; each trial writes what `simulate --output` writes. Prints and writes the report."""
    if resume is not None:
        if file is not None or output is not None:
            raise ConfigError("--resume DIR takes the sweep planned in DIR: give no FILE and no --output")
        folder = sweep_folder(resume, "--resume")
        run_planned(read_plan(folder), folder, address=address, max_concurrent=max_concurrent)
        return
    if file is None:
        raise ConfigError("FILE: give a sweep file (or --resume DIR)")
    directory = sweep_folder(output or f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}", "--output")
    if resume_if_exists and (directory / PLAN).is_file():
        planned = read_plan(directory)
        if planned.trials != read_sweep(file, directory.absolute()).trials:
            raise ConfigError(f"--output {directory}: holds another sweep than {file}; --resume-if-exists goes on "
                              "only with the same one")
        run_planned(planned, directory, address=address, max_concurrent=max_concurrent)
        return
    check_output_dir(str(directory))
    sweep = read_sweep(file, directory.absolute())
    check_data(sweep)
    sweep.write(directory)
    run_planned(sweep, directory, address=address, max_concurrent=max_concurrent)
