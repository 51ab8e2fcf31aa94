"""FedMR against FedAvg and the paper's baselines on real data, same partition, seed and rounds.

    python -m benchmarks.accuracy.run [--suite paper|baselines|all] [--parallel 2] [--runs DIR]
    python -m benchmarks.accuracy.run --report-only

Each run is `fedmr-ray simulate` with the flags listed in SUITES (printed before it starts), one
executor, two runs side by side on a 2-core machine. A run directory that already holds its last
round is kept; an interrupted one resumes from its checkpoint. Then `fedmr-ray report` draws
every comparison into benchmarks/accuracy/results/ (PNG + a markdown table).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fedmr_ray.results import read_metrics

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CIFAR10 = os.environ.get("FEDMR_CIFAR10", "/work/data/cifar10")  # ../shared/data's archive, unpacked

COMMON = ["--clients", "100", "--fraction", "0.1", "--model", "cnn", "--partition", "dirichlet", "--seed", "0",
          "--num-actors", "1", "--checkpoint-every", "25", "--quiet"]


def run(name: str, dataset: str, alpha: float, algorithm: str, rounds: int, eval_every: int) -> tuple[str, list[str]]:
    data = ["--dataset", "cifar10", "--data-dir", CIFAR10] if dataset == "cifar10" else ["--dataset", dataset]
    return name, [*COMMON, *data, "--alpha", str(alpha), "--algorithm", algorithm, "--rounds", str(rounds),
                  "--eval-every", str(eval_every)]


# Scaled to this 2-core CPU machine (the paper trains 500 to 2000 rounds on GPUs): Fashion-MNIST
# 200 rounds; CIFAR-10 at alpha 0.1 to 1000 rounds, where FedMR's curve crosses FedAvg's late;
# CIFAR-10 at alpha 0.5 to 200 rounds.
SUITES: dict[str, list[tuple[str, list[str]]]] = {
    "paper": [
        run("fmnist-a0.1-fedmr", "fmnist", 0.1, "fedmr", 200, 10),
        run("fmnist-a0.1-fedavg", "fmnist", 0.1, "fedavg", 200, 10),
        run("fmnist-a0.5-fedmr", "fmnist", 0.5, "fedmr", 200, 10),
        run("fmnist-a0.5-fedavg", "fmnist", 0.5, "fedavg", 200, 10),
        run("cifar10-a0.1-fedmr", "cifar10", 0.1, "fedmr", 1000, 10),
        run("cifar10-a0.1-fedavg", "cifar10", 0.1, "fedavg", 1000, 10),
        run("cifar10-a0.5-fedmr", "cifar10", 0.5, "fedmr", 200, 10),
        run("cifar10-a0.5-fedavg", "cifar10", 0.5, "fedavg", 200, 10),
    ],
    "baselines": [run(f"fmnist-a0.1-{a}", "fmnist", 0.1, a, 200, 10)
                  for a in ("fedprox", "scaffold", "moon", "fedgen", "clusamp", "fedindep")],
}
# CIFAR-10 at alpha 0.1 first (about 90 minutes, the pair side by side), then Fashion-MNIST
# (minutes a run), CIFAR-10 at alpha 0.5 last
SUITES["all"] = SUITES["paper"][4:6] + SUITES["paper"][:4] + SUITES["baselines"] + SUITES["paper"][6:]

# What `report` draws: a figure and table rows per comparison.
COMPARISONS = {
    "cifar10-a0.1": ["cifar10-a0.1-fedmr", "cifar10-a0.1-fedavg"],
    "cifar10-a0.5": ["cifar10-a0.5-fedmr", "cifar10-a0.5-fedavg"],
    "fmnist-a0.1": ["fmnist-a0.1-fedmr", "fmnist-a0.1-fedavg"],
    "fmnist-a0.5": ["fmnist-a0.5-fedmr", "fmnist-a0.5-fedavg"],
    "fmnist-a0.1-baselines": ["fmnist-a0.1-fedmr", "fmnist-a0.1-fedavg"] + [
        f"fmnist-a0.1-{a}" for a in ("fedprox", "scaffold", "moon", "fedgen", "clusamp", "fedindep")],
}


def exe() -> str:
    return shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or "fedmr-ray"


def finished(run_dir: Path, args: list[str]) -> bool:
    rounds = int(args[args.index("--rounds") + 1])
    try:
        return read_metrics(run_dir)[-1]["round"] == rounds
    except (OSError, IndexError, ValueError):
        return False


def command(run_dir: Path, args: list[str]) -> list[str]:
    if (run_dir / "checkpoint.npz").exists():
        return [exe(), "simulate", "--resume", str(run_dir), "--quiet"]
    if run_dir.exists():
        shutil.rmtree(run_dir)  # started but never checkpointed: start again
    return [exe(), "simulate", *args, "--output", str(run_dir)]


def run_all(runs: list[tuple[str, list[str]]], runs_dir: Path, parallel: int) -> None:
    todo = [(name, args) for name, args in runs if not finished(runs_dir / name, args)]
    active: list[tuple[str, subprocess.Popen, float]] = []
    while todo or active:
        while todo and len(active) < parallel:
            name, args = todo.pop(0)
            cmd = command(runs_dir / name, args)
            print(f"$ {shlex.join(cmd)}", flush=True)
            active.append((name, subprocess.Popen(cmd), time.monotonic()))
        time.sleep(2)
        for item in list(active):
            name, proc, started = item
            if proc.poll() is not None:
                active.remove(item)
                print(f"  {name}: exit {proc.returncode} after {time.monotonic() - started:.0f} s", flush=True)


def report(runs_dir: Path) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, members in COMPARISONS.items():
        dirs = [str(runs_dir / m) for m in members if (runs_dir / m / "metrics.parquet").exists()]
        if len(dirs) < 2:
            continue
        subprocess.run([exe(), "report", *dirs, "--output", str(RESULTS / f"{name}.png"),
                        "--table", str(RESULTS / f"{name}.md")], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="all")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=HERE / "runs")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        run_all(SUITES[args.suite], args.runs, args.parallel)
    report(args.runs)


if __name__ == "__main__":
    main()
