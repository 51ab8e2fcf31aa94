"""A sweep's report: statistics over seeds.

Trials that differ only by their seed form a group; per group, the mean, standard deviation and
95% confidence interval (Student's t, n - 1 degrees of freedom) of the final accuracy, the best,
the mean of the last five evaluations and the rounds to a target accuracy. Written into the
sweep's directory: trials.parquet (every trial's per-round metrics, its values as columns),
summary.parquet and summary.md (the table), curves.png (mean accuracy against round with 95%
bands, a panel per value of a chosen key).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fedmr_ray.errors import ConfigError
from fedmr_ray.report import LAST, RunSummary, save_figure
from fedmr_ray.sweep import Sweep, read_plan

TRIALS, SUMMARY, TABLE, CURVES = "trials.parquet", "summary.parquet", "summary.md", "curves.png"
SEED = "seed"
STATISTICS = ("final", "best", f"last{LAST}", "rounds_to_target")


@dataclass(frozen=True)
class Interval:
    """Mean, standard deviation and the 95% confidence interval of a sample (n values)."""

    n: int
    mean: float
    std: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Interval:
        values = [v for v in values if v is not None and not math.isnan(v)]
        n = len(values)
        if n == 0:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        mean = float(np.mean(values))
        if n == 1:
            return cls(1, mean, math.nan, math.nan, math.nan)
        from scipy.stats import t

        std = float(np.std(values, ddof=1))
        half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        return cls(n, mean, std, mean - half, mean + half)

    def text(self, digits: int = 4) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.high - self.mean:.{digits}f}"


@dataclass(frozen=True)
class Group:
    values: dict[str, Any]  # the values its trials share (all but the seed)
    runs: list[RunSummary]  # its finished trials

    def statistics(self, target: float) -> dict[str, Interval]:
        rounds = [run.rounds_to(target) for run in self.runs]
        return {
            "final": Interval.of([run.final["test_accuracy"] for run in self.runs]),
            "best": Interval.of([run.best["test_accuracy"] for run in self.runs]),
            f"last{LAST}": Interval.of([run.last_mean for run in self.runs]),
            "rounds_to_target": Interval.of([math.nan if r is None else float(r) for r in rounds]),
        }


def finished_runs(sweep: Sweep) -> list[tuple[dict[str, Any], RunSummary]]:
    """(values, summary) of every trial that ran all its rounds."""
    return [(trial.values, RunSummary(trial.name, trial.name, trial.metrics()))
            for trial in sweep.trials if trial.finished()]


def groups(sweep: Sweep) -> list[Group]:
    """The finished trials, grouped by their values but the seed, in the sweep's order."""
    found: dict[tuple, Group] = {}
    for values, run in finished_runs(sweep):
        shared = {k: v for k, v in values.items() if k != SEED}
        found.setdefault(tuple(shared.items()), Group(shared, [])).runs.append(run)
    return list(found.values())


def write_trials(sweep: Sweep, directory: Path) -> None:
    """Every trial's per-round metrics in one table, the trial's name and values as columns."""
    rows = [{"trial": trial.name, **trial.values, **row} for trial in sweep.trials for row in trial.metrics()]
    if rows:
        _atomic_table(pa.Table.from_pylist(rows), directory / TRIALS)


def _atomic_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def report_sweep(directory: Path, *, facet: str | None = None, target: float | None = None,
                 figure: Path | None = None, table: Path | None = None) -> list[str]:
    """Write the sweep's report into its directory (or `figure` and `table`) and return the table's
    lines. `target`: the accuracy of the rounds-to-target column (default: the lowest final
    accuracy of the finished trials, which every one reached)."""
    sweep = read_plan(directory)
    found = groups(sweep)
    if not found:
        raise ConfigError(f"{directory}: no trial of the sweep has finished yet")
    if facet is not None and facet not in sweep.keys:
        raise ConfigError(f"--facet {facet}: not a key the sweep varies; accepted: {', '.join(sweep.keys)}")
    if target is None:
        target = min(run.final["test_accuracy"] for group in found for run in group.runs)
    write_trials(sweep, directory)
    keys = [k for k in sweep.keys if k != SEED]
    records, lines = [], [f"| {' | '.join(keys) or 'trials'} | seeds | final acc | best acc | mean of last {LAST} | "
                          f"rounds to {target:.4f} |", "|" + "---|" * (len(keys or [0]) + 5)]
    for group in found:
        stats = group.statistics(target)
        records.append({**group.values, "seeds": len(group.runs), "target": target,
                        **{f"{name}_{part}": getattr(interval, part) for name, interval in stats.items()
                           for part in ("mean", "std", "low", "high")},
                        "reached_target": stats["rounds_to_target"].n})
        cells = [str(group.values.get(k, "")) for k in keys] or ["all"]
        rounds = stats["rounds_to_target"]
        reach = rounds.text(1) + (f" ({rounds.n}/{len(group.runs)} reached)" if rounds.n < len(group.runs) else "")
        lines.append(f"| {' | '.join(cells)} | {len(group.runs)} | {stats['final'].text()} | {stats['best'].text()} | "
                     f"{stats[f'last{LAST}'].text()} | {reach} |")
    lines.append(f"\nmean ± half-width of the 95% confidence interval (Student's t) over seeds; "
                 f"{sum(len(g.runs) for g in found)} of {len(sweep.trials)} trials finished")
    _atomic_table(pa.Table.from_pylist(records), directory / SUMMARY)
    (table or directory / TABLE).write_text("\n".join(lines) + "\n")
    plot_groups(found, figure or directory / CURVES, facet, [k for k in keys if k != facet])
    return lines


def plot_groups(found: list[Group], path: Path, facet: str | None, label_keys: list[str]) -> None:
    """Mean test accuracy against round per group, with its 95% band; a panel per facet value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(g.values.get(facet) for g in found)) if facet else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        for group in (g for g in found if facet is None or g.values.get(facet) == panel):
            rounds = sorted(set.intersection(*({row["round"] for row in run.rows} for run in group.runs)))
            by_round = [[next(r["test_accuracy"] for r in run.rows if r["round"] == x) for run in group.runs]
                        for x in rounds]
            intervals = [Interval.of(values) for values in by_round]
            label = ", ".join(f"{k}={group.values[k]}" for k in label_keys if k in group.values) or "all"
            line, = axis.plot(rounds, [i.mean for i in intervals], label=f"{label} (n={len(group.runs)})")
            if len(group.runs) > 1:
                axis.fill_between(rounds, [i.low for i in intervals], [i.high for i in intervals],
                                  color=line.get_color(), alpha=0.2, linewidth=0)
        axis.set_title(f"{facet} = {panel}" if facet else "mean test accuracy, 95% band")
        axis.set_xlabel("round")
        axis.set_ylabel("test accuracy")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)
