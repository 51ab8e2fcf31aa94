"""The main job as a user runs it: `fedmr-ray simulate --clients 1000`, every other flag at its
default, timed from the shell's point of view (Ray start, setup and rounds included).

    python -m benchmarks.default_run [--algorithms fedmr fedavg] [--clients N] [-- simulate flags]

Prints one line per algorithm: wall time, setup, seconds per round (median), accuracy.

Alternatives side by side: each --variant NAME='FLAGS' is run with every algorithm and seed
(NAME@fedmr='FLAGS': with fedmr only, for flags that only it takes),
the runs interleaved (variant by variant within a repetition, --repeat times, so that a slow spell
of the machine falls on all of them), and a markdown table comes out: final accuracy, mean of the
last 5 evaluations, wall time and setup (medians over the repetitions), the test set's commonest
class beside them (synthetic data):

    python -m benchmarks.default_run --algorithms fedmr fedavg --seeds 0 1 2 \\
        --variant 'shared; K 100; 150 rounds=--synthetic-labels shared' \\
        --variant 'per-client (LEAF); K 100; 150 rounds=--synthetic-labels per-client' \\
        --variant 'shared; K 100; 150 rounds; bound 20@fedmr=--synthetic-labels shared --first-stage-bound 20' \\
        --variant 'shared; K 10; 1000 rounds=--synthetic-labels shared --fraction 0.01 --rounds 1000'

(a name holds no '='; what follows the first '=' is the flags).

Accuracy figures use only the evaluated rounds (rows whose test_accuracy is not null).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fedmr_ray.results import read_metrics

LAST = 5  # the mean of the last LAST evaluations


def _evaluated(row: dict) -> bool:
    acc = row.get("test_accuracy")
    return acc is not None and not math.isnan(acc)  # null (not evaluated) or NaN


def run(algorithm: str, clients: int, extra: list[str]) -> dict:
    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or "fedmr-ray"
    out = Path(tempfile.mkdtemp(prefix="fedmr-bench-")) / "run"
    start = time.perf_counter()
    subprocess.run([exe, "simulate", "--clients", str(clients), "--algorithm", algorithm, "--output", str(out),
                    "--quiet", *extra], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = read_metrics(out)
    shutil.rmtree(out.parent, ignore_errors=True)
    # seconds a round from the rows that carry elapsed_s (every round, or the evaluated ones)
    timed = [row for row in rows if row.get("elapsed_s") is not None]
    elapsed = [0.0] + [row["elapsed_s"] for row in timed]
    rounds = [0] + [row["round"] for row in timed]
    per_round = [(b - a) / (rb - ra) for a, b, ra, rb in zip(elapsed, elapsed[1:], rounds, rounds[1:])]
    evaluated = [row for row in rows if _evaluated(row)]
    accs = [row["test_accuracy"] for row in evaluated]
    return {
        "algorithm": algorithm, "wall_s": wall, "setup_s": wall - timed[-1]["elapsed_s"],
        "s_per_round": statistics.median(per_round), "rounds": rows[-1]["round"],
        "final_acc": accs[-1], "best_acc": max(accs), "last5_acc": statistics.fmean(accs[-LAST:]),
        "curve": [(row["round"], round(row["test_accuracy"], 4)) for row in evaluated],
        # --client-eval-every: the global model's accuracy per client, the mean over the clients (last such round)
        "client_acc": next((row["client_accuracy_mean"] for row in reversed(rows)
                            if row.get("client_accuracy_mean") is not None), None),
    }


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def majority_class(clients: int, flags: list[str]) -> float | None:
    """The test accuracy of always guessing the commonest class, for the synthetic data these
    flags make (None for another dataset)."""
    from fedmr_ray.config import DataConfig, SimulationConfig
    from fedmr_ray.data.synthetic import generated_synthetic

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--dataset", default=DataConfig().dataset)
    parser.add_argument("--synthetic-alpha", type=float, default=DataConfig().synthetic_alpha)
    parser.add_argument("--synthetic-beta", type=float, default=DataConfig().synthetic_beta)
    parser.add_argument("--synthetic-labels", default=DataConfig().synthetic_labels)
    parser.add_argument("--seed", type=int, default=SimulationConfig().seed)
    known, _ = parser.parse_known_args(flags)
    if known.dataset != "synthetic":
        return None
    import numpy as np

    y = generated_synthetic(clients, known.seed, known.synthetic_alpha, known.synthetic_beta,
                            known.synthetic_labels == "shared").y_test
    return float(np.bincount(y).max() / len(y))


def compare(args: argparse.Namespace, extra: list[str]) -> None:
    variants = []  # (name, flags, the algorithms it runs)
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        name, _, only = name.partition("@")
        variants.append((name, shlex.split(flags) + extra, only.split(",") if only else args.algorithms))
    results: dict[tuple[str, str, int], list[dict]] = {}
    for rep in range(args.repeat):
        for name, flags, algorithms in variants:
            for seed in args.seeds:
                for algorithm in algorithms:
                    r = run(algorithm, args.clients, [*flags, "--seed", str(seed)])
                    results.setdefault((name, algorithm, seed), []).append(r)
                    print(f"[{rep + 1}/{args.repeat}] {name} {algorithm} seed {seed}: wall {r['wall_s']:.1f} s, "
                          f"setup {r['setup_s']:.1f} s, final {r['final_acc']:.4f}, last-{LAST} mean "
                          f"{r['last5_acc']:.4f}, per-client mean {_fmt(r['client_acc'])}; {r['curve']}",
                          file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({f"{n}|{a}|{s}": v for (n, a, s), v in results.items()}, indent=1))
    per_client = any(r["client_acc"] is not None for rs in results.values() for r in rs)
    print(f"| variant | algorithm | seed | majority class | final acc | mean of last {LAST} evals | wall s "
          f"| setup s |" + (" per-client mean acc |" if per_client else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if per_client else ""))
    for name, flags, algorithms in variants:
        for algorithm in algorithms:
            finals, lasts = [], []
            for seed in args.seeds:
                rs = results[(name, algorithm, seed)]
                majority = majority_class(args.clients, [*flags, "--seed", str(seed)])
                finals.append(rs[0]["final_acc"])
                lasts.append(rs[0]["last5_acc"])
                print(f"| {name} | {algorithm} | {seed} | {'' if majority is None else f'{majority:.3f}'} "
                      f"| {rs[0]['final_acc']:.4f} | {rs[0]['last5_acc']:.4f} "
                      f"| {statistics.median(r['wall_s'] for r in rs):.1f} "
                      f"| {statistics.median(r['setup_s'] for r in rs):.1f} |"
                      + (f" {_fmt(rs[0]['client_acc'])} |" if per_client else ""))
            if len(args.seeds) > 1:
                print(f"| {name} | {algorithm} | mean | | {statistics.fmean(finals):.4f} "
                      f"| {statistics.fmean(lasts):.4f} | | |" + (" |" if per_client else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", nargs="+", default=["fedmr"])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="an alternative to compare: a name and the simulate flags it adds (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="with --variant: the seeds to run")
    parser.add_argument("--repeat", type=int, default=1, help="with --variant: runs of each, for the median wall")
    parser.add_argument("--json", help="with --variant: also write every run's figures and curve to this file")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.variant:
        compare(args, extra)
        return
    print(f"{'algorithm':10} {'wall s':>8} {'setup s':>8} {'s/round':>8} {'rounds':>6} {'final':>7} "
          f"{'last-5':>7} {'best':>7}")
    for algorithm in args.algorithms:
        r = run(algorithm, args.clients, extra)
        print(f"{r['algorithm']:10} {r['wall_s']:8.1f} {r['setup_s']:8.1f} {r['s_per_round']:8.2f} "
              f"{r['rounds']:6d} {r['final_acc']:7.4f} {r['last5_acc']:7.4f} {r['best_acc']:7.4f}")
        print(f"  accuracy by round: {r['curve']}", flush=True)


if __name__ == "__main__":
    main()
