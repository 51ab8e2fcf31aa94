"""Comparing runs: a summary table and test accuracy and loss against round, from run directories."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedmr_ray.errors import ConfigError, unwritable
from fedmr_ray.results import CONFIG, METRICS, read_file, read_metrics

LAST = 5  # evaluations averaged at the end: a run that oscillates is judged by more than its last one
FIGURE_FORMATS = ("png", "pdf", "svg")  # what a figure's suffix may name (matplotlib writes each)


def is_evaluated(row: dict[str, Any]) -> bool:
    """A round whose global model was evaluated: its test_accuracy is neither null nor NaN."""
    accuracy = row.get("test_accuracy")
    return accuracy is not None and not math.isnan(accuracy)


@dataclass(frozen=True)
class RunSummary:
    name: str
    label: str  # what tells it from the others in a figure: its algorithm, or its folder's name
    rows: list[dict[str, Any]]  # its evaluated rounds: the others (test columns null) are left out

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", [row for row in self.rows if is_evaluated(row)])

    @property
    def final(self) -> dict[str, Any]:
        return self.rows[-1]

    @property
    def best(self) -> dict[str, Any]:
        return max(self.rows, key=lambda row: row["test_accuracy"])

    @property
    def last_mean(self) -> float:
        tail = self.rows[-LAST:]
        return sum(row["test_accuracy"] for row in tail) / len(tail)

    def rounds_to(self, target: float) -> int | None:
        return next((row["round"] for row in self.rows if row["test_accuracy"] >= target), None)


def load_runs(dirs: list[str | Path]) -> list[RunSummary]:
    """The runs' metrics: run directories, local or behind URIs."""
    runs = []
    for run_dir in dirs:
        try:
            rows = read_metrics(run_dir)
        except OSError:
            raise ConfigError(f"{run_dir}: no {METRICS} in it (give run directories written by "
                              "fedmr-ray simulate)") from None
        try:
            algorithm = json.loads(read_file(run_dir, CONFIG))["algorithm"]["name"]
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            algorithm = rows[0].get("algorithm", "?") if rows else "?"
        run = RunSummary(str(run_dir).rstrip("/").rsplit("/", 1)[-1], algorithm, rows)
        if not run.rows:
            raise ConfigError(f"{run_dir}: {METRICS} holds no evaluated round yet")
        runs.append(run)
    if len({run.label for run in runs}) < len(runs):  # the same algorithm twice: name them by folder
        runs = [RunSummary(run.name, run.name, run.rows) for run in runs]
    return runs


def default_target(runs: list[RunSummary]) -> float:
    """The lowest final accuracy among the runs: every run reached it, so the rounds compare speed."""
    return min(run.final["test_accuracy"] for run in runs)


def summary_table(runs: list[RunSummary], target: float) -> list[str]:
    """A markdown table: final, best, mean of the last evaluations, rounds to the target."""
    lines = [f"| run | algorithm | rounds | final acc | best acc (round) | mean of last {LAST} evals | "
             f"rounds to {target:.4f} |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        reached = run.rounds_to(target)
        lines.append(f"| {run.name} | {run.final.get('algorithm', '?')} | {run.final['round']} | "
                     f"{run.final['test_accuracy']:.4f} | {run.best['test_accuracy']:.4f} ({run.best['round']}) | "
                     f"{run.last_mean:.4f} | {reached if reached is not None else 'not reached'} |")
    return lines


def default_title(runs: list[RunSummary]) -> str:
    """The runs' names joined by "vs"; names sharing a "prefix-" give "prefix: the rest vs ...",
    so that a comparison of many runs stays one short line."""
    names = [run.name for run in runs]
    prefix = os.path.commonprefix(names).rpartition("-")[0] if len(names) > 1 else ""
    if not prefix:
        return " vs ".join(names)
    return f"{prefix}: " + " vs ".join(name[len(prefix) + 1:] for name in names)


def check_output_file(path: Path, option: str, figure: bool = False) -> None:
    """A file the command will write: refused before anything is written where it cannot be
    (a folder there, a parent that is a file or cannot be written, a figure format matplotlib
    is not asked to write)."""
    if figure and path.suffix.lower().lstrip(".") not in FIGURE_FORMATS:
        raise ConfigError(f"{option} {path}: a figure's suffix names its format; accepted: "
                          f"{', '.join('.' + name for name in FIGURE_FORMATS)}")
    problem = f"{path} is a directory" if path.is_dir() else unwritable(path)
    if problem is not None:
        raise ConfigError(f"{option} {path}: cannot write it ({problem})")


def plot_runs(runs: list[RunSummary], path: Path, title: str) -> None:
    save_figure(runs_figure(runs, title), path)


def runs_figure(runs: list[RunSummary], title: str):
    """Test accuracy and loss against round, a curve per run; the legend beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, loss) = plt.subplots(1, 2, figsize=(12, 4))
    for run in runs:
        rounds = [row["round"] for row in run.rows]
        acc.plot(rounds, [row["test_accuracy"] for row in run.rows], label=run.label)
        loss.plot(rounds, [row["test_loss"] for row in run.rows], label=run.label)
    for axis, name in ((acc, "test accuracy"), (loss, "test loss")):
        round_axis(axis)
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    loss.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)  # beside the curves, not on them
    fig.suptitle(title)
    return fig


def round_axis(axis) -> None:
    """An x axis of rounds: whole numbers only."""
    from matplotlib.ticker import MaxNLocator

    axis.set_xlabel("round")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig, path: Path) -> None:
    """The figure at `path`, in the format its suffix names (PNG for another), written whole (a
    temporary file renamed)."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = path.suffix.lower().lstrip(".")
    kind = kind if kind in FIGURE_FORMATS else "png"
    tmp = path.with_name(f".{path.name}.tmp.{kind}")
    fig.savefig(tmp, dpi=110, format=kind)
    plt.close(fig)
    tmp.replace(path)
