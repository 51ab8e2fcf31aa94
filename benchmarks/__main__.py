"""Every benchmark of benchmarks/RESULTS.md but the accuracy runs, one after another.

    python -m benchmarks [--flower-python PATH]

Prints each benchmark's table as it finishes (13 minutes on the 2-core development machine,
Flower's columns included: 776 s on 2026-11-25 at 04:02). The accuracy runs take hours: python -m benchmarks.accuracy.run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

BENCHMARKS = [
    ["benchmarks.startup", "--runs", "3"],
    ["benchmarks.overhead", "--workload", "fmnist", "--local-epochs", "1", "--turns", "6"],
    ["benchmarks.overhead", "--workload", "fmnist", "--local-epochs", "5", "--turns", "4"],
    ["benchmarks.overhead", "--workload", "synthetic", "--local-epochs", "5", "--turns", "4"],
    ["benchmarks.maxpool", "--rounds", "5"],
    ["benchmarks.coordinator"],
    ["benchmarks.scale", "--algorithms", "fedmr"],
    ["benchmarks.long_run", "--rounds", "300"],
    ["benchmarks.sweep"],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flower-python", default=os.environ.get("FLOWER_PYTHON"))
    args = parser.parse_args()
    started = time.perf_counter()
    for benchmark in BENCHMARKS:
        extra = ["--flower-python", args.flower_python] if args.flower_python and "overhead" in benchmark[0] else []
        print(f"\n$ python -m {' '.join(benchmark + extra)}", flush=True)
        subprocess.run([sys.executable, "-m", *benchmark, *extra], check=True)
    print(f"\nall benchmarks: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
