"""Memory across a long run: does anything grow round after round?

    python -m benchmarks.long_run [--rounds 300] [--clients 200] [--algorithm fedmr]

Runs FedMR on the synthetic data (K = clients / 10 models, 2 local epochs) on a local Ray and
prints the memory (PSS) of the whole process tree (driver, coordinator, executors, Ray's
daemons) after round 10 and after the last round, and their ratio (target: within 5%).
"""

from __future__ import annotations

import argparse
import time

from benchmarks.procmem import tree_pss_mb
from fedmr_ray import AlgorithmConfig, SimulationConfig, TrainConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--algorithm", default="fedmr")
    args = parser.parse_args()
    config = SimulationConfig(clients=args.clients, rounds=args.rounds, eval_every=10,
                              train=TrainConfig(local_epochs=2), algorithm=AlgorithmConfig(args.algorithm))
    marks: dict[int, float] = {}

    def on_round(record, elapsed):
        if record.round in (10, 100, 200, args.rounds):
            marks[record.round] = tree_pss_mb()

    started = time.perf_counter()
    simulate(config, on_round=on_round)
    print(f"workload: synthetic, {args.clients} clients, {config.cohort_size} per round, {args.algorithm}, "
          f"{args.rounds} rounds in {time.perf_counter() - started:.0f} s")
    for round_done, mb in sorted(marks.items()):
        print(f"  after round {round_done:4d}: {mb:8.1f} MB (PSS, driver + coordinator + executors + Ray)")
    print(f"ratio last / round 10: {marks[args.rounds] / marks[10]:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
