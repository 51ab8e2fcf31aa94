"""Scale: the default job's setup time, round time and peak memory from 1,000 to 1,000,000 clients.

    python -m benchmarks.scale [--clients 1000 100000] [--rounds 2] [--fraction 0.1 | --cohort 100]

Each size runs `simulate` (every flag at its default but --clients, --rounds and the fraction
sampled) on a fresh local Ray in a child process, and reports the seconds from the call until
round 1 starts (Ray's start, the data's sizes and test set, the executors), the seconds per round,
and the peak memory (PSS) of the whole process tree: driver, coordinator, executors and Ray's
daemons. `--cohort N` keeps the clients sampled per round at N whatever the population (fraction
N / clients), which shows whether a round's cost grows with the clients that do not take part.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from benchmarks.procmem import PeakSampler


def one(clients: int, rounds: int, algorithm: str, fraction: float) -> dict:
    from fedmr_ray import AlgorithmConfig, SimulationConfig, simulate

    started, marks = time.perf_counter(), {}
    config = SimulationConfig(clients=clients, rounds=rounds, fraction=fraction, algorithm=AlgorithmConfig(algorithm))
    with PeakSampler(period=0.25) as peak:
        simulate(config, on_start=lambda summary: marks.setdefault("start", time.perf_counter() - started),
                 on_round=lambda record, elapsed: marks.setdefault(f"round {record.round}", elapsed))
    return {"clients": clients, "cohort": config.cohort_size, "algorithm": algorithm,
            "setup_s": marks["start"], "round_s": marks[f"round {rounds}"] / rounds,
            "peak_mb": peak.peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--algorithms", nargs="+", default=["fedmr", "fedavg"])
    sampled = parser.add_mutually_exclusive_group()
    sampled.add_argument("--fraction", type=float, default=0.1, help="clients sampled per round, as a fraction")
    sampled.add_argument("--cohort", type=int, help="clients sampled per round, the same for every size")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--algorithm", default="fedmr", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.rounds, args.algorithm, args.fraction)))
        return
    print(f"synthetic default job, --rounds {args.rounds}, "
          + (f"{args.cohort} clients per round" if args.cohort else f"--fraction {args.fraction}")
          + f"; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'algorithm':9} {'clients':>9} {'per round':>9} {'to round 1 s':>13} {'s/round':>8} {'peak MB (PSS)':>14}")
    for algorithm in args.algorithms:
        rows = []
        for clients in args.clients:  # each in a process of its own: its memory is its alone
            fraction = args.cohort / clients if args.cohort else args.fraction
            out = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--one", str(clients), "--rounds",
                                  str(args.rounds), "--algorithm", algorithm, "--fraction", repr(fraction)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.splitlines()[-1]))
            row = rows[-1]
            print(f"{algorithm:9} {clients:9,} {row['cohort']:9,} {row['setup_s']:13.1f} {row['round_s']:8.1f} "
                  f"{row['peak_mb']:14.0f}", flush=True)
        print(f"{algorithm}: peak growth from {rows[0]['clients']:,} to {rows[-1]['clients']:,} clients: "
              f"{rows[-1]['peak_mb'] - rows[0]['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
