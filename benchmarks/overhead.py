"""Seconds per round through fedmr-ray against the same local training without it.

    python -m benchmarks.overhead [--workload fmnist|synthetic] [--local-epochs 1] [--turns 6] [--block 3]
                                  [--flower-python /path/to/venv/bin/python]

The same rounds (same data, partition, model, cohorts, local steps and shuffles; FedAvg):
  (a) fedmr-ray on a local Ray, one executor per core;
  (b) plain PyTorch (benchmarks/plain_loop.py: torch.optim.SGD, autograd), one process, one
      thread, clients one after another: the compute bound is (b) / cores (perfect scaling);
  (c) the same, one process using every core's threads;
  (d) `cores` plain processes side by side, each training its share of every cohort: the
      parallel speed this machine really delivers, a bound that can be reached;
  (e) Flower's simulation engine (flwr, its Ray backend) running the same client code, when a
      Python with flwr is given (a separate venv: see benchmarks/RESULTS.md); after the others,
      FLOWER_ROUNDS rounds (it cannot take turns);
  (f) fedmr-ray's own trainer (train.ClientTrainer, what its executors run), one process, one
      thread, no Ray: (f) / cores is its training's compute bound, and (a) over it what the
      runtime adds (its calls and waits, the FedAvg sums, Ray's processes, two busy cores). Not
      where the trainer takes many clients at once (the synthetic job): a round then lasts at
      least its longest client's steps, one after another, and (f) / cores bounds nothing.
(a) to (d) and (f) take turns, `--block` rounds at a time (fedmr-ray's executors wait while the plain
processes train the same rounds, each in processes of its own), so that a drift of the machine's
speed, which on a shared VM reaches tens of percent within minutes, reaches every row alike.
Medians of the rounds after the first turn (warm-up) but the first of each turn (it wakes
processes that waited) and fedmr-ray's last (it evaluates). Workloads:
fmnist = Fashion-MNIST, 1000 clients (Dirichlet 0.5), 100 per round, the 28x28 cnn, batch 50;
synthetic = the default job.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from fedmr_ray.algorithms.base import size_weights, weighted_sum
from fedmr_ray.data import load_dataset
from fedmr_ray.federation import sample_cohort
from fedmr_ray.models import ModelSpec, initial_state
from fedmr_ray.train import ClientTrainer, TrainJob

FLOWER_PEER = Path(__file__).with_name("flower_peer.py")
FLOWER = "(e) Flower 1.41 simulation (Ray backend)"
FLOWER_ROUNDS = 4  # it takes seconds a round: the median of rounds 2 to 4
TRAINER = "(f) fedmr-ray's trainer, 1 process, 1 thread"


def workload(name: str, epochs: int, rounds: int, cores: int) -> SimulationConfig:
    common = dict(clients=1000, fraction=0.1, rounds=rounds, eval_every=10**6, algorithm=AlgorithmConfig("fedavg"),
                  train=TrainConfig(local_epochs=epochs), runtime=RuntimeConfig(num_actors=cores))
    if name == "fmnist":
        return SimulationConfig(**common, model="cnn", data=DataConfig(dataset="fmnist"))
    return SimulationConfig(**common)


class Rounds:
    """The workload's rounds, timed, as a subclass trains them; `share` = (k, n): only every n-th
    client of a cohort from the k-th (one of n processes side by side)."""

    def __init__(self, config: SimulationConfig, share: tuple[int, int] = (0, 1)):
        self.config, self.share = config, share

    def round(self, r: int) -> float:
        """Trains round r (this process's share of its cohort); its seconds."""
        cfg = self.config
        cohort = sample_cohort(cfg.seed, r, cfg.clients, cfg.cohort_size).tolist()[self.share[0]::self.share[1]]
        start = time.perf_counter()
        self.train(r, cohort)
        return time.perf_counter() - start

    def train(self, r: int, cohort: list[int]) -> None:
        raise NotImplementedError


class PlainLoop(Rounds):
    """The rounds as the plain loop (benchmarks/plain_loop.py) trains them."""

    def __init__(self, config: SimulationConfig, share: tuple[int, int] = (0, 1)):
        super().__init__(config, share)
        data = load_dataset(config).materialize()
        spec = ModelSpec(config.model, data.num_classes, data.input_shape)
        self.model = spec.build()
        self.state = dict(zip(self.model.state_dict(), map(torch.from_numpy, initial_state(spec, config.seed))))
        self.x, self.y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        self.rows = [data.client_rows(c) for c in range(data.num_clients)]

    def train(self, r: int, cohort: list[int]) -> None:
        t = self.config.train
        self.state = train_round(self.model, self.state, self.x, self.y, self.rows, cohort, self.config.seed, r,
                                 t.local_epochs, t.batch_size, t.lr, t.momentum)


class TrainerLoop(Rounds):
    """The rounds as fedmr-ray's own ClientTrainer (what its executors run) trains them, no Ray,
    then FedAvg's weighted sum as fedmr-ray takes it."""

    def __init__(self, config: SimulationConfig, share: tuple[int, int] = (0, 1)):
        super().__init__(config, share)
        data = load_dataset(config)  # as the executors get it: generated clients are made as they train
        spec = ModelSpec(config.model, data.num_classes, data.input_shape)
        self.trainer = ClientTrainer(spec, data, config.train, config.seed)
        self.state = initial_state(spec, config.seed)
        self.sizes = data.client_sizes()

    def train(self, r: int, cohort: list[int]) -> None:
        trained = self.trainer.train_many([TrainJob(i, c, r) for i, c in enumerate(cohort)], [self.state] * len(cohort))
        weights = size_weights(self.sizes[cohort])
        self.state = [weighted_sum([t.entries[e] for t in trained], weights) for e in range(len(self.state))]


class PlainProcesses:
    """Plain-loop processes (fedmr-ray's trainer's with `trainer`), each on its share of every
    cohort with `threads` threads; a round's time is the slowest's. None of them runs in the
    driver: every loop keeps its process, and fedmr-ray's driver stays as idle as when it runs
    alone."""

    def __init__(self, config_path: Path, processes: int, threads: int, trainer: bool = False):
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "benchmarks.overhead", "--plain-share", str(k), str(processes), str(threads),
             "--config", str(config_path), *(["--trainer"] if trainer else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for k in range(processes)]

    def round(self, r: int) -> float:
        for proc in self.procs:  # all at once
            proc.stdin.write(f"{r}\n")
            proc.stdin.flush()
        return max(float(proc.stdout.readline()) for proc in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            proc.wait()


def serve_share(config: SimulationConfig, share: tuple[int, int], threads: int, trainer: bool) -> None:
    """One plain-loop (or trainer) process: trains each round asked on stdin, answers its seconds."""
    torch.set_num_threads(threads)
    loop = (TrainerLoop if trainer else PlainLoop)(config, share)
    for line in sys.stdin:
        print(loop.round(int(line)), flush=True)


def flower(python: str, config_path: Path, cores: int) -> float | None:
    out = subprocess.run([python, str(FLOWER_PEER), "--config", str(config_path), "--cores", str(cores)],
                         capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": ""})
    if out.returncode != 0:
        print(f"flower peer failed:\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return float(out.stdout.split()[-1])


def measure(config: SimulationConfig, config_path: Path, cores: int, block: int, trainer_row: bool
            ) -> dict[str, list[float]]:
    """Seconds of the rounds of (a) to (d) (and (f)), taking turns `block` rounds at a time. Not counted:
    the first turn (warm-up: in trials here the first turn's rounds of (a) and (d) ran 10-30%
    slower than later ones), the first round of each turn (it wakes processes that waited),
    fedmr-ray's last round (it evaluates)."""
    names = ["(a) fedmr-ray on Ray", "(b) plain PyTorch, 1 process, 1 thread",
             f"(c) plain PyTorch, 1 process, {cores} threads", f"(d) plain PyTorch, {cores} processes side by side",
             *([TRAINER] if trainer_row else [])]
    seconds: dict[str, list[float]] = {name: [] for name in names}
    plain = [PlainProcesses(config_path, 1, 1), PlainProcesses(config_path, 1, cores),
             PlainProcesses(config_path, cores, 1), *([PlainProcesses(config_path, 1, 1, trainer=True)] if trainer_row else [])]
    last = [0.0]  # when fedmr-ray's last round ended, or its turn began

    def turn(record, elapsed) -> None:
        now = time.perf_counter()
        counted = record.round > block
        if counted and record.round % block != 1 and record.round < config.rounds:
            seconds[names[0]].append(now - last[0])
        if record.round % block == 0:
            for name, processes in zip(names[1:], plain):
                times = [processes.round(r) for r in range(record.round - block, record.round)]
                seconds[name] += times[1:] if counted else []
            now = time.perf_counter()
        last[0] = now

    def started(summary) -> None:
        last[0] = time.perf_counter()

    try:
        simulate(config, on_start=started, on_round=turn)
    finally:
        for processes in plain:
            processes.close()
    return seconds


def trainer_vectorises(config: SimulationConfig) -> bool:
    """Whether fedmr-ray's executors (one thread each, as here) train many clients at once."""
    data, threads = load_dataset(config), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ClientTrainer(ModelSpec(config.model, data.num_classes, data.input_shape), data, config.train,
                             config.seed).vectorised
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["fmnist", "synthetic"], default="fmnist")
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--turns", type=int, default=6, help="turns of each of (a) to (d) and (f), the first a warm-up")
    parser.add_argument("--block", type=int, default=3, help="rounds a turn (the first not counted)")
    parser.add_argument("--flower-python", default=os.environ.get("FLOWER_PYTHON"))
    parser.add_argument("--plain-share", nargs=3, type=int, help=argparse.SUPPRESS)  # k, n, threads
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--trainer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_share:  # one of the side-by-side processes
        k, n, threads = args.plain_share
        serve_share(SimulationConfig.from_dict(json.loads(Path(args.config).read_text())), (k, n), threads,
                    args.trainer)
        return
    cores = os.cpu_count() or 1
    if args.block < 2 or args.turns < 2:
        parser.error(f"--block {args.block} --turns {args.turns}: at least 2 rounds a turn and 2 turns")
    config = workload(args.workload, args.local_epochs, args.turns * args.block + 1, cores)
    load_dataset(config)  # decoded and cached before anything is timed

    # (f) / cores bounds fedmr-ray's own training only where its trainer takes clients one by one:
    # trained many at once, a round takes at least its longest client's steps, one after another
    trainer_row = not trainer_vectorises(config)
    with tempfile.TemporaryDirectory(prefix="fedmr-overhead-") as folder:  # the configs the processes read
        config_path = Path(folder) / "config.json"
        config_path.write_text(json.dumps(config.to_dict()))
        seconds = measure(config, config_path, cores, args.block, trainer_row)
        rows = {name: statistics.median(values) for name, values in seconds.items()}
        if args.flower_python:
            flower_config = config_path.with_name("flower.json")
            flower_config.write_text(json.dumps(dataclasses.replace(config, rounds=FLOWER_ROUNDS).to_dict()))
            flower_s = flower(args.flower_python, flower_config, cores)
            if flower_s is not None:
                rows[FLOWER] = flower_s
    a_name, b_name, _, d_name = list(seconds)[:4]  # (a) to (d), in order
    ratios = [x / (y / cores) for x, y in zip(seconds[a_name], seconds[b_name])]  # round by round
    if trainer_row:
        rows[TRAINER] = rows.pop(TRAINER)  # after Flower's (e)
    bound, reachable, a = rows[b_name] / cores, rows[d_name], rows[a_name]
    print(f"workload: {args.workload} ({config.model}), {config.clients} clients, {config.cohort_size} per round, "
          f"{args.local_epochs} local epochs, batch {config.train.batch_size}, FedAvg; {cores} cores; "
          f"median s/round of {len(ratios)} rounds each, (a) to (d){' and (f)' * trainer_row} taking turns "
          f"{args.block} rounds at a time; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'run':48} {'s/round':>8} {'x bound':>8} {'x (d)':>8}")
    for name, value in rows.items():
        print(f"{name:48} {value:8.3f} {value / bound:8.2f} {value / reachable:8.2f}")
    print(f"compute bound (b) / {cores} cores: {bound:.3f} s/round; (a) / bound = {a / bound:.2f} "
          f"(round by round: median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}); "
          f"(a) / (d) = {a / reachable:.2f}")
    if trainer_row:
        own = rows[TRAINER] / cores
        print(f"fedmr-ray's own training bound (f) / {cores} cores: {own:.3f} s/round; (a) / it = {a / own:.2f} "
              f"(what the runtime adds: calls, waits, the FedAvg sums, Ray's processes, cores shared); "
              f"(f) / (b) = {rows[TRAINER] / rows[b_name]:.2f}")
    else:
        print("(f) not run: fedmr-ray's trainer takes many clients at once here, where a round lasts at least "
              "its longest client's steps, so (f) / cores bounds nothing")
    if FLOWER in rows:
        print(f"Flower / fedmr-ray: {rows[FLOWER] / a:.2f}")


if __name__ == "__main__":
    main()
