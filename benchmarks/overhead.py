"""Seconds per round through fedmr-ray against the same local training without it.

    python -m benchmarks.overhead [--workload fmnist|synthetic] [--local-epochs 1] [--rounds 8]
                                  [--flower-python /path/to/venv/bin/python]

The same rounds (same data, partition, model, cohorts, local steps and shuffles; FedAvg):
  (a) fedmr-ray on a local Ray, one executor per core;
  (b) plain PyTorch (benchmarks/plain_loop.py: torch.optim.SGD, autograd), one process, one
      thread, clients one after another: the compute bound is (b) / cores (perfect scaling);
  (c) the same, one process using every core's threads;
  (d) `cores` plain processes side by side, each training its share of every cohort: the
      parallel speed this machine really delivers, a bound that can be reached;
  (e) Flower's simulation engine (flwr, its Ray backend) running the same client code, when a
      Python with flwr is given (a separate venv: see benchmarks/RESULTS.md).
Medians of the rounds after the first (warm-up); (a) to (d) are measured `--repeats` times in
turn, so that a drift of the machine's speed reaches each alike. Workloads: fmnist = Fashion-MNIST, 1000
clients (Dirichlet 0.5), 100 per round, the 28x28 cnn, batch 50; synthetic = the default job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.plain_loop import train_round
from fedmr_ray import AlgorithmConfig, DataConfig, RuntimeConfig, SimulationConfig, TrainConfig, simulate
from fedmr_ray.data import load_dataset
from fedmr_ray.federation import sample_cohort
from fedmr_ray.models import ModelSpec, initial_state

FLOWER_PEER = Path(__file__).with_name("flower_peer.py")


def workload(name: str, epochs: int, rounds: int, cores: int) -> SimulationConfig:
    common = dict(clients=1000, fraction=0.1, rounds=rounds, eval_every=10**6, algorithm=AlgorithmConfig("fedavg"),
                  train=TrainConfig(local_epochs=epochs), runtime=RuntimeConfig(num_actors=cores))
    if name == "fmnist":
        return SimulationConfig(**common, model="cnn", data=DataConfig(dataset="fmnist"))
    return SimulationConfig(**common)


def after_first(marks: list[float]) -> list[float]:
    """Seconds per round from the times rounds ended, the first round (warm-up) left out."""
    return [b - a for a, b in zip(marks, marks[1:])]


def on_ray(config: SimulationConfig) -> list[float]:
    marks: list[float] = []
    simulate(config, on_round=lambda record, elapsed: marks.append(elapsed))
    return after_first(marks)


def plain(config: SimulationConfig, threads: int, share: tuple[int, int] = (0, 1)) -> list[float]:
    """Seconds per round of the plain loop; `share` = (k, n): only every n-th client from the k-th."""
    torch.set_num_threads(threads)
    data = load_dataset(config).materialize()
    model = ModelSpec(config.model, data.num_classes, data.input_shape).build()
    state = dict(zip(model.state_dict(), (torch.from_numpy(a) for a in initial_state(
        ModelSpec(config.model, data.num_classes, data.input_shape), config.seed))))
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    rows = [data.client_rows(c) for c in range(data.num_clients)]
    t = config.train
    marks = [time.perf_counter()]
    for r in range(config.rounds):
        cohort = sample_cohort(config.seed, r, config.clients, config.cohort_size).tolist()[share[0]::share[1]]
        state = train_round(model, state, x, y, rows, cohort, config.seed, r, t.local_epochs, t.batch_size, t.lr,
                            t.momentum)
        marks.append(time.perf_counter())
    return after_first(marks[1:])


def side_by_side(config_path: Path, cores: int) -> list[float]:
    """`cores` plain processes at once, each on its share of every cohort: per round, the slowest."""
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.overhead", "--plain-share", str(k), str(cores),
                               "--config", str(config_path)], stdout=subprocess.PIPE, text=True)
             for k in range(cores)]
    return [max(round_s) for round_s in zip(*(json.loads(p.communicate()[0]) for p in procs))]


def flower(python: str, config_path: Path, cores: int) -> float | None:
    out = subprocess.run([python, str(FLOWER_PEER), "--config", str(config_path), "--cores", str(cores)],
                         capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": ""})
    if out.returncode != 0:
        print(f"flower peer failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["fmnist", "synthetic"], default="fmnist")
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2,
                        help="measure (a) to (d) this many times in turn; medians over all their rounds")
    parser.add_argument("--flower-python", default=os.environ.get("FLOWER_PYTHON"))
    parser.add_argument("--plain-share", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_share:  # one of the side-by-side processes
        config = SimulationConfig.from_dict(json.loads(Path(args.config).read_text()))
        print(json.dumps(plain(config, 1, tuple(args.plain_share))))
        return
    cores = os.cpu_count() or 1
    config = workload(args.workload, args.local_epochs, args.rounds, cores)
    config_path = Path(tempfile.mkdtemp(prefix="fedmr-overhead-")) / "config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    load_dataset(config)  # decoded and cached before anything is timed

    measures = {
        "(a) fedmr-ray on Ray": lambda: on_ray(config),
        "(b) plain PyTorch, 1 process, 1 thread": lambda: plain(config, 1),
        f"(c) plain PyTorch, 1 process, {cores} threads": lambda: plain(config, cores),
        f"(d) plain PyTorch, {cores} processes side by side": lambda: side_by_side(config_path, cores),
    }
    # in turn, `repeats` times: a drift of the machine's speed reaches every row alike
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(args.repeats):
        for name, measure in measures.items():
            seconds[name] += measure()
    rows = {name: statistics.median(values) for name, values in seconds.items()}
    if args.flower_python:
        flower_s = flower(args.flower_python, config_path, cores)
        if flower_s is not None:
            rows["(e) Flower 1.41 simulation (Ray backend)"] = flower_s
    bound = rows["(b) plain PyTorch, 1 process, 1 thread"] / cores
    reachable = rows[f"(d) plain PyTorch, {cores} processes side by side"]
    a = rows["(a) fedmr-ray on Ray"]
    print(f"workload: {args.workload} ({config.model}), {config.clients} clients, {config.cohort_size} per round, "
          f"{args.local_epochs} local epochs, batch {config.train.batch_size}, FedAvg; {cores} cores; "
          f"median s/round of rounds 2..{args.rounds}, {args.repeats} times each in turn; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'run':48} {'s/round':>8} {'x bound':>8} {'x (d)':>8}")
    for name, seconds in rows.items():
        print(f"{name:48} {seconds:8.3f} {seconds / bound:8.2f} {seconds / reachable:8.2f}")
    print(f"compute bound (b) / {cores} cores: {bound:.3f} s/round; (a) / bound = {a / bound:.2f}; "
          f"(a) / (d) = {a / reachable:.2f}")
    if "(e) Flower 1.41 simulation (Ray backend)" in rows:
        print(f"Flower / fedmr-ray: {rows['(e) Flower 1.41 simulation (Ray backend)'] / a:.2f}")


if __name__ == "__main__":
    main()
