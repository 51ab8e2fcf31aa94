"""The main job as a user runs it: `fedmr-ray simulate --clients 1000`, every other flag at its
default, timed from the shell's point of view (Ray start, setup and rounds included).

    python -m benchmarks.default_run [--algorithms fedmr fedavg] [--clients N] [-- simulate flags]

Prints one line per algorithm: wall time, setup, seconds per round (median), accuracy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedmr_ray.results import read_metrics


def run(algorithm: str, clients: int, extra: list[str]) -> dict:
    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or "fedmr-ray"
    out = Path(tempfile.mkdtemp(prefix="fedmr-bench-")) / "run"
    start = time.perf_counter()
    subprocess.run([exe, "simulate", "--clients", str(clients), "--algorithm", algorithm, "--output", str(out),
                    "--quiet", *extra], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = read_metrics(out)
    elapsed = [0.0] + [row["elapsed_s"] for row in rows]
    rounds = [0] + [row["round"] for row in rows]
    per_round = [(b - a) / (rb - ra) for a, b, ra, rb in zip(elapsed, elapsed[1:], rounds, rounds[1:])]
    return {
        "algorithm": algorithm, "wall_s": wall, "setup_s": wall - rows[-1]["elapsed_s"],
        "s_per_round": statistics.median(per_round), "rounds": rows[-1]["round"],
        "final_acc": rows[-1]["test_accuracy"], "best_acc": max(row["test_accuracy"] for row in rows),
        "curve": [(row["round"], round(row["test_accuracy"], 4)) for row in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=["fedmr"])
    parser.add_argument("--clients", type=int, default=1000)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    print(f"{'algorithm':10} {'wall s':>8} {'setup s':>8} {'s/round':>8} {'rounds':>6} {'final':>7} {'best':>7}")
    for algorithm in args.algorithms:
        r = run(algorithm, args.clients, extra)
        print(f"{r['algorithm']:10} {r['wall_s']:8.1f} {r['setup_s']:8.1f} {r['s_per_round']:8.2f} "
              f"{r['rounds']:6d} {r['final_acc']:7.4f} {r['best_acc']:7.4f}")
        print(f"  accuracy by round: {r['curve']}", flush=True)


if __name__ == "__main__":
    main()
