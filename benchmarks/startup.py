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
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def busy_cpu_s() -> float:
    """CPU seconds this machine has spent busy (all processes, all cores) since it booted."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def command(job: dict) -> tuple[float, float]:
    """Seconds from starting the real command to its 'setup' JSON line, and the CPU seconds the
    machine spent busy meanwhile (on a quiet machine: the command's processes and Ray's)."""
    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or "fedmr-ray"
    out = tempfile.mkdtemp(prefix="fedmr-startup-")
    try:
        start, cpu = time.perf_counter(), busy_cpu_s()
        proc = subprocess.Popen([exe, "simulate", *flags(job), "--rounds", "1", "--log-format", "json",
                                 "--output", f"{out}/run"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        ready = None
        for line in proc.stderr:
            if ready is None and line.startswith("{") and json.loads(line).get("event") == "setup":
                ready, cpu = time.perf_counter() - start, busy_cpu_s() - cpu
        if proc.wait() != 0 or ready is None:
            raise SystemExit(f"{exe} simulate {' '.join(flags(job))} failed")
        return ready, cpu
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
    with ray_cluster(config.runtime.address):
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


@contextlib.contextmanager
def running_cluster(port: int = 6390):
    """A local Ray cluster started beforehand (`ray start --head`), as a cluster a command joins
    with --address: its address; stopped afterwards."""
    ray_exe = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    head = subprocess.Popen([ray_exe, "start", "--head", "--block", "--port", str(port), "--num-cpus",
                             str(os.cpu_count()), "--include-dashboard", "false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run([ray_exe, "status", "--address", f"127.0.0.1:{port}"], check=False,
                             capture_output=True).returncode:
            if head.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("ray start --head failed")
            time.sleep(1)
        time.sleep(5)  # its prestarted workers and agents up: what a cluster in use has
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        head.wait(60)
        # Ray leaves the file that names the cluster `ray start` last started (a plain ray.init()
        # would wait on it forever): gone with the cluster, as `ray stop` would
        from ray._common.utils import get_ray_address_file

        named = Path(get_ray_address_file(None))
        if named.is_file() and named.read_text().strip().endswith(f":{port}"):
            named.unlink()


def turns(jobs: dict[str, dict], runs: int) -> None:
    """Each job --runs times, interleaved: the command and the breakdown; their medians."""
    commands: dict[str, list[float]] = {job: [] for job in jobs}
    cpus: dict[str, list[float]] = {job: [] for job in jobs}
    parts: dict[str, list[dict[str, float]]] = {job: [] for job in jobs}
    for turn in range(runs):
        for job, settings in jobs.items():
            wall, cpu = command(settings)
            commands[job].append(wall)
            cpus[job].append(cpu)
            parts[job].append(phases(settings))
            print(f"[{turn + 1}/{runs}] {job}: command to round 1 {commands[job][-1]:.2f} s; "
                  f"taken apart: {parts[job][-1]}", file=sys.stderr, flush=True)
    for job, settings in jobs.items():
        print(f"\n{job}: `fedmr-ray simulate {' '.join(flags(settings))}`: command to round 1, median of {runs}: "
              f"{statistics.median(commands[job]):.2f} s (min {min(commands[job]):.2f}, max {max(commands[job]):.2f}); "
              f"the machine's CPUs busy meanwhile {statistics.median(cpus[job]):.2f} CPU s, median "
              f"(/ {os.cpu_count()} CPUs = {statistics.median(cpus[job]) / os.cpu_count():.2f} s: the least wall "
              "time this work could take here)")
        print("\n| seconds from the process's start to | median | min | max |\n|---|---|---|---|")
        for name in parts[job][0]:
            values = [p[name] for p in parts[job]]
            print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--running", action="store_true",
                        help="also time each job on a running local cluster (ray start --head), as --address")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    jobs = {job: JOBS[job] for job in args.jobs}
    print(f"on a fresh local Ray, the command's own ({time.strftime('%Y-%m-%d %H:%M')})")
    turns(jobs, args.runs)
    if args.running:
        with running_cluster() as address:
            print(f"\non a running local cluster (ray start --head), joined with --address {address}")
            turns({f"{job} --address": {**settings, "address": address} for job, settings in jobs.items()}, args.runs)


if __name__ == "__main__":
    main()
