"""FedMR's round against FedAvg's on the same workload: does recombining cost more than averaging?

    python -m benchmarks.recombination [--workloads fmnist-k10 fmnist-k100 ...]
                                       [--turns 5] [--block 3]

The two runs take turns `--block` rounds at a time, each in a process of its own with a local Ray
of its own (one waits, its executors idle, while the other trains), so that a drift of the
machine's speed reaches both alike. The same data, partition, cohorts and local steps; only the
server step differs (FedMR: every entry of the K models permuted among them; FedAvg: the
size-weighted mean). Medians of the rounds after the first turn (warm-up), less the first of each
turn (it wakes processes that waited) and the last (it evaluates). Workloads: Fashion-MNIST, 1000
clients (Dirichlet 0.5), the 28x28 cnn, 1 local epoch, batch 50, K = 10 or 100 clients a round;
CIFAR-10 (../shared/data's JPEG copy unpacked, as benchmarks/accuracy reads it: $FEDMR_CIFAR10),
1000 clients, resnet20, 1 local epoch, K = 10 or 100; the main job (`fedmr-ray simulate --clients
1000`: synthetic data, the MLP, 5 local epochs, K = 100).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {  # settings by the flat names of a config file; algorithm added per run
    "fmnist-k10": {"dataset": "fmnist", "model": "cnn", "clients": 1000, "fraction": 0.01, "local_epochs": 1},
    "fmnist-k100": {"dataset": "fmnist", "model": "cnn", "clients": 1000, "fraction": 0.1, "local_epochs": 1},
    "cifar10-resnet20-k10": {"dataset": "cifar10", "model": "resnet20", "clients": 1000, "fraction": 0.01,
                             "local_epochs": 1},
    "cifar10-resnet20-k100": {"dataset": "cifar10", "model": "resnet20", "clients": 1000, "fraction": 0.1,
                              "local_epochs": 1},
    "default": {"clients": 1000},  # the main job: synthetic, the MLP, K = 100, 5 local epochs
}


def config_for(settings: dict, algorithm: str, rounds: int):
    from fedmr_ray.config import SimulationConfig
    from fedmr_ray.configfile import nested

    from benchmarks.accuracy.run import CIFAR10

    flat = {**settings, "algorithm": algorithm, "rounds": rounds, "eval_every": 10**6}
    if settings.get("dataset") == "cifar10":
        flat["data_dir"] = CIFAR10
    return SimulationConfig.from_dict(nested(flat, "workload")[0])


def child(settings: dict, algorithm: str, rounds: int, block: int) -> None:
    """One run: after every `block` rounds, prints their seconds and waits for a line on stdin."""
    from fedmr_ray import simulate

    last = [0.0]

    def started(summary) -> None:
        print("[]", flush=True)  # ready: wait for the first turn
        sys.stdin.readline()
        last[0] = time.perf_counter()

    times: list[float] = []

    def turn(record, elapsed) -> None:
        times.append(time.perf_counter() - last[0])
        if record.round % block == 0 or record.round == rounds:
            print(json.dumps(times), flush=True)
            times.clear()
            sys.stdin.readline()
        last[0] = time.perf_counter()

    simulate(config_for(settings, algorithm, rounds), on_start=started, on_round=turn)


class Run:
    def __init__(self, workload: str, algorithm: str, rounds: int, block: int):
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.recombination", "--child", workload,
                                      algorithm, str(rounds), str(block)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.read()  # its setup done

    def read(self) -> list[float]:
        for line in self.proc.stdout:  # anything else a library prints passes
            if line.startswith("["):
                return json.loads(line)
        raise SystemExit(f"the run failed (exit {self.proc.wait()})")

    def turn(self) -> list[float]:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()
        self.proc.wait()


def measure(workload: str, turns: int, block: int) -> dict[str, list[float]]:
    rounds = turns * block + 1  # the last evaluates, alone in its turn
    runs = {algorithm: Run(workload, algorithm, rounds, block) for algorithm in ("fedmr", "fedavg")}
    seconds: dict[str, list[float]] = {algorithm: [] for algorithm in runs}
    try:
        for t in range(turns):
            for algorithm, run in runs.items():
                times = run.turn()
                if t > 0:
                    seconds[algorithm] += times[1:]
        for run in runs.values():
            run.turn()  # the evaluated last round, not counted
    finally:
        for run in runs.values():
            run.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["fmnist-k10", "fmnist-k100"], choices=list(WORKLOADS))
    parser.add_argument("--turns", type=int, default=5, help="turns of each run, the first a warm-up")
    parser.add_argument("--block", type=int, default=3, help="rounds a turn (the first not counted)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # workload, algorithm, rounds, block
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.child:
        workload, algorithm, rounds, block = args.child
        child(WORKLOADS[workload], algorithm, int(rounds), int(block))
        return
    if args.block < 2 or args.turns < 2:
        parser.error(f"--block {args.block} --turns {args.turns}: at least 2 rounds a turn and 2 turns")
    print(f"FedMR and FedAvg taking turns {args.block} rounds at a time, {args.turns} turns (the first a "
          f"warm-up); {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}")
    print("| workload | FedMR s/round | FedAvg s/round | FedMR / FedAvg | rounds each |\n|---|---|---|---|---|")
    for workload in args.workloads:
        seconds = measure(workload, args.turns, args.block)
        fedmr, fedavg = (statistics.median(seconds[a]) for a in ("fedmr", "fedavg"))
        print(f"| {workload} | {fedmr:.3f} | {fedavg:.3f} | {fedmr / fedavg:.3f} | {len(seconds['fedmr'])} |",
              flush=True)


if __name__ == "__main__":
    main()
