"""How far a sweep has run and how its trials compare so far, for one still running or stopped
part-way (`fedmr-ray sweep` reports finished trials only):

    python -m benchmarks.paper.progress runs/paper-cifar10-a0.1 [--plot progress.png]

Per trial, the rounds done; then, at the last evaluated round that every started trial has
reached, the accuracy there, the best so far and the mean of the last five evaluations up to it.
Trials that differ by their seed alone form an arm; each arm after the first is compared with the
first seed by seed (paired), with the mean difference and its 95% interval over the seeds (one
seed: no interval). Reads the trials' folders in the given directory, wherever it was moved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedmr_ray.errors import ConfigError
from fedmr_ray.report import LAST, save_figure
from fedmr_ray.results import evaluated, read_metrics
from fedmr_ray.sweep import read_plan
from fedmr_ray.sweep_report import SEED, Interval

Curve = list[tuple[int, float]]  # (round, test accuracy) of the evaluated rounds


def curves(directory: Path) -> tuple[dict[str, tuple[str, int, Curve]], int]:
    """Each started trial's (arm, seed, curve), and the rounds a trial runs."""
    sweep = read_plan(directory)
    found = {}
    for trial in sweep.trials:
        try:
            rows = evaluated(read_metrics(directory / trial.name))
        except OSError:  # not started
            continue
        if rows:
            arm = ",".join(f"{k}={v}" for k, v in trial.values.items() if k != SEED) or "all"
            found[trial.name] = (arm, trial.config.seed, [(r["round"], r["test_accuracy"]) for r in rows])
    return found, sweep.trials[0].config.rounds


def upto(curve: Curve, last: int) -> list[float]:
    return [accuracy for round_, accuracy in curve if round_ <= last]


def report(directory: Path) -> str:
    found, rounds = curves(directory)
    if not found:
        raise ConfigError(f"{directory}: no trial has evaluated a round yet")
    common = min(curve[-1][0] for _, _, curve in found.values())
    lines = [f"At round {common} of {rounds}, the last evaluated round every started trial has reached:", "",
             f"| trial | rounds done | accuracy at {common} | best to {common} | mean of last {LAST} to {common} |",
             "|---|---|---|---|---|"]
    at: dict[str, dict[int, float]] = {}
    for name, (arm, seed, curve) in found.items():
        accuracies = upto(curve, common)
        at.setdefault(arm, {})[seed] = accuracies[-1]
        lines.append(f"| {name} | {curve[-1][0]} | {accuracies[-1]:.4f} | {max(accuracies):.4f} | "
                     f"{sum(accuracies[-LAST:]) / len(accuracies[-LAST:]):.4f} |")
    arms = list(at)
    for other in arms[1:]:
        seeds = sorted(set(at[arms[0]]) & set(at[other]))
        differences = [at[arms[0]][s] - at[other][s] for s in seeds]
        interval = Interval.of(differences)
        spread = "" if interval.n < 2 else f" (95% interval {interval.low:+.4f} to {interval.high:+.4f})"
        lines += ["", f"{arms[0]} minus {other} at round {common}, seed by seed: "
                  f"{', '.join(f'{d:+.4f}' for d in differences)}; mean {interval.mean:+.4f}{spread}, "
                  f"over {interval.n} seed{'s' if interval.n != 1 else ''}"]
    return "\n".join(lines)


def plot(directory: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found, rounds = curves(directory)
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = {}
    for name, (arm, seed, curve) in found.items():
        colour = colours.setdefault(arm, f"C{len(colours)}")
        ax.plot(*zip(*curve), color=colour, linewidth=1, label=f"{arm}, seed {seed}")
    ax.set(xlabel="round", ylabel="test accuracy", xlim=(0, rounds), title=directory.name)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="the sweep's directory")
    parser.add_argument("--plot", type=Path, help="also draw every started trial's accuracy curve here")
    args = parser.parse_args(argv)
    try:
        print(report(args.directory))
        if args.plot:
            plot(args.directory, args.plot)
    except ConfigError as err:
        print(f"progress: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
