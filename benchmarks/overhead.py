"""Seconds per round through fedmr-ray on Ray against the same rounds in plain PyTorch.

    python -m benchmarks.overhead [--clients 1000] [--rounds 8] [--local-epochs 5] [--algorithm fedmr]

Three runs of the same rounds (same data, model, cohort, steps and seeds, so the same numbers):
(a) fedmr-ray on a local Ray with one executor per core; (b) the serial backend (the same loop
without Ray) with one torch thread: clients one after another; (c) the serial backend with all
cores' threads. The compute bound is (b) divided by the cores (a) used. Medians over the rounds
after the first (warm-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from fedmr_ray import AlgorithmConfig, RuntimeConfig, SimulationConfig, TrainConfig, simulate


def seconds_per_round(config: SimulationConfig, serial: bool) -> tuple[float, list[dict]]:
    marks: list[float] = []
    history = simulate(config, serial=serial, on_round=lambda record, elapsed: marks.append(elapsed))
    per_round = [b - a for a, b in zip(marks, marks[1:])]  # drops round 1 (warm-up)
    return statistics.median(per_round), history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--local-epochs", type=int, default=5)
    parser.add_argument("--algorithm", default="fedmr")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    base = SimulationConfig(clients=args.clients, rounds=args.rounds, eval_every=10**9,
                            train=TrainConfig(local_epochs=args.local_epochs),
                            algorithm=AlgorithmConfig(args.algorithm), runtime=RuntimeConfig(num_actors=cores))
    on_ray, ray_history = seconds_per_round(base, serial=False)
    torch.set_num_threads(1)
    one_thread, serial_history = seconds_per_round(base, serial=True)
    torch.set_num_threads(cores)
    all_threads, _ = seconds_per_round(base, serial=True)
    same = [r["test_accuracy"] for r in ray_history] == [r["test_accuracy"] for r in serial_history]
    bound = one_thread / cores
    print(f"workload: synthetic, {args.clients} clients, {base.cohort_size} per round, mlp, "
          f"{args.local_epochs} local epochs, batch 50; {cores} cores; median of rounds 2..{args.rounds}")
    print(f"{'run':44} {'s/round':>8} {'x bound':>8}")
    print(f"{'(a) fedmr-ray on Ray, ' + str(cores) + ' executors':44} {on_ray:8.3f} {on_ray / bound:8.2f}")
    print(f"{'(b) plain PyTorch, 1 process, 1 thread':44} {one_thread:8.3f} {one_thread / bound:8.2f}")
    print(f"{'(c) plain PyTorch, 1 process, ' + str(cores) + ' threads':44} {all_threads:8.3f} "
          f"{all_threads / bound:8.2f}")
    print(f"compute bound (b / {cores} cores): {bound:.3f} s/round; Ray and serial final accuracy equal: {same}")
    print(f"run at {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
