"""Start-up: from the command to round 1, and where the seconds go.

    python -m benchmarks.startup [--runs 5] [--jobs default fmnist-w1]

For each job, interleaved over --runs turns: (1) the real command, `fedmr-ray simulate ... --rounds
1 --log-format json`, timed from its start to the JSON line that says setup is over (round 1
starts); (2) the same run taken apart in one process, each phase timed: Python and the imports,
the data, Ray's start, the coordinator's and the executors' processes (their start, imports,
trainer, the step timing and vectorisation checks, from the stamps they report: the coordinator's
`startup()`), and round 1. Medians over the turns. Times are wall seconds from the process's
start (Linux /proc), so that the interpreter's own start counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

JOBS = {  # their settings, by the flat names of a config file
    # the main job, as the README's first command runs it
    "default": {"clients": 1000},
    # the Fashion-MNIST job of the overhead benchmark at 1 local epoch
    "fmnist-w1": {"dataset": "fmnist", "model": "cnn", "clients": 100, "local_epochs": 1},
}


def flags(job: dict) -> list[str]:
    return [part for key, value in job.items() for part in ("--" + key.replace("_", "-"), str(value))]


def process_start() -> float:
    from fedmr_ray.runtime.stamps import process_started

    return process_started()


def command(job: dict) -> float:
    """Seconds from starting the real command to its 'setup' JSON line."""
    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or "fedmr-ray"
    out = tempfile.mkdtemp(prefix="fedmr-startup-")
    try:
        start = time.perf_counter()
        proc = subprocess.Popen([exe, "simulate", *flags(job), "--rounds", "1", "--log-format", "json",
                                 "--output", f"{out}/run"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        ready = None
        for line in proc.stderr:
            if ready is None and line.startswith("{") and json.loads(line).get("event") == "setup":
                ready = time.perf_counter() - start
        if proc.wait() != 0 or ready is None:
            raise SystemExit(f"{exe} simulate {' '.join(flags(job))} failed")
        return ready
    finally:
        shutil.rmtree(out, ignore_errors=True)


def phases(job: dict) -> dict[str, float]:
    """One run taken apart in a fresh process: {phase: seconds} (child mode)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.startup", "--child", json.dumps(job)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(job: dict) -> None:
    born = process_start()
    import torch  # noqa: F401  (what the command imports first)
    import ray

    from fedmr_ray.config import SimulationConfig
    from fedmr_ray.configfile import nested
    from fedmr_ray.runtime.driver import RayRun, ray_cluster
    from fedmr_ray.setup import check, prepare

    imported = time.time()
    config = check(SimulationConfig.from_dict(nested({**job, "rounds": 1}, "job")[0]))
    setup = prepare(config)
    data = time.time()
    with ray_cluster(None):
        started = time.time()
        run = RayRun(setup)
        run.describe()
        described = time.time()
        stamps = ray.get(run.coordinator.startup.remote())
        run.step()
        first = time.time()
    coordinator, executors = stamps["coordinator"], stamps["executors"]

    def latest(key: str) -> float:
        return max(e[key] for e in executors)

    marks = {
        "python + imports (driver)": imported,
        "data (check, prepare)": data,
        "Ray start (ray.init)": started,
        "coordinator process up": coordinator["process"],
        "coordinator imports done": coordinator["init"],
        "executor processes up (last)": latest("process"),
        "executor imports done (last)": latest("init"),
        "executor trainer built, vectorisation checked (last)": latest("trainer"),
        "executor step timing done (last)": latest("described"),
        "pool ready (coordinator)": coordinator["ready"],
        "describe returned (driver)": described,
        "round 1 done": first,
    }
    print(json.dumps({name: round(at - born, 3) for name, at in marks.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    commands: dict[str, list[float]] = {job: [] for job in args.jobs}
    parts: dict[str, list[dict[str, float]]] = {job: [] for job in args.jobs}
    for turn in range(args.runs):
        for job in args.jobs:
            commands[job].append(command(JOBS[job]))
            parts[job].append(phases(JOBS[job]))
            print(f"[{turn + 1}/{args.runs}] {job}: command to round 1 {commands[job][-1]:.2f} s; "
                  f"taken apart: {parts[job][-1]}", file=sys.stderr, flush=True)
    for job in args.jobs:
        print(f"\n{job}: `fedmr-ray simulate {' '.join(flags(JOBS[job]))}`: command to round 1, median of {args.runs}: "
              f"{statistics.median(commands[job]):.2f} s (min {min(commands[job]):.2f}, max {max(commands[job]):.2f})")
        print("\n| seconds from the process's start to | median | min | max |\n|---|---|---|---|")
        for name in parts[job][0]:
            values = [p[name] for p in parts[job]]
            print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")


if __name__ == "__main__":
    main()
