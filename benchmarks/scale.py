"""Scale: the default job's setup time and peak memory from 1,000 to 100,000 clients.

    python -m benchmarks.scale [--clients 1000 100000] [--rounds 2]

Each size runs `simulate` (every flag at its default but --clients and --rounds) on a fresh local
Ray in a child process, and reports the seconds from the call until round 1 starts (Ray's start,
the data's sizes and test set, the executors), the seconds per round, and the peak memory (PSS)
of the whole process tree: driver, coordinator, executors and Ray's daemons.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.procmem import PeakSampler


def one(clients: int, rounds: int, algorithm: str) -> dict:
    from fedmr_ray import AlgorithmConfig, SimulationConfig, simulate

    started, marks = time.perf_counter(), {}
    with PeakSampler(period=0.25) as peak:
        simulate(SimulationConfig(clients=clients, rounds=rounds, algorithm=AlgorithmConfig(algorithm)),
                 on_start=lambda summary: marks.setdefault("start", time.perf_counter() - started),
                 on_round=lambda record, elapsed: marks.setdefault(f"round {record.round}", elapsed))
    return {"clients": clients, "algorithm": algorithm, "setup_s": marks["start"], "round_s": marks[f"round {rounds}"] / rounds,
            "peak_mb": peak.peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--algorithms", nargs="+", default=["fedmr", "fedavg"])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--algorithm", default="fedmr", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.rounds, args.algorithm)))
        return
    print(f"synthetic default job (K = clients / 10), --rounds {args.rounds}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'algorithm':9} {'clients':>8} {'to round 1 s':>13} {'s/round':>8} {'peak MB (PSS)':>14}")
    for algorithm in args.algorithms:
        rows = []
        for clients in args.clients:  # each in a process of its own: its memory is its alone
            out = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--one", str(clients), "--rounds",
                                  str(args.rounds), "--algorithm", algorithm], capture_output=True, text=True,
                                 check=True)
            rows.append(json.loads(out.stdout.splitlines()[-1]))
            row = rows[-1]
            print(f"{algorithm:9} {clients:8,} {row['setup_s']:13.1f} {row['round_s']:8.1f} {row['peak_mb']:14.0f}",
                  flush=True)
        print(f"{algorithm}: peak growth from {rows[0]['clients']:,} to {rows[-1]['clients']:,} clients: "
              f"{rows[-1]['peak_mb'] - rows[0]['peak_mb']:.0f} MB (target < 2048)")


if __name__ == "__main__":
    main()
