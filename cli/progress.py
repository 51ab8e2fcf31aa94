"""A live progress bar over `fedmr_ray.simulate`, and the summary at the end."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fedmr_ray import SimulationConfig, simulate
from fedmr_ray.federation import RoundRecord


def run_with_progress(config: SimulationConfig, *, serial: bool, quiet: bool, resume=None) -> list[dict]:
    err, out = Console(stderr=True), Console()
    started = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("acc {task.fields[acc]}  loss {task.fields[loss]}"),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=err, disable=quiet, transient=False,
    )
    task = progress.add_task("round", total=config.rounds, acc="-", loss="-")
    setup: dict = {}

    def on_start(summary: dict) -> None:
        setup.update(summary)
        where = "this process (serial)" if serial else f"{summary['num_executors']} executors"
        if summary["vectorised"]:
            where += f" training up to {config.train.client_batch} clients at once"
        if not quiet:
            err.print(f"{config.algorithm.name}: {config.clients} clients, {config.cohort_size} per round, "
                      f"{summary['train_samples']:,} training samples; {where} on "
                      f"{', '.join(summary['devices'])}; setup {time.perf_counter() - started:.1f} s")
        progress.start()  # only now: a setup error stays the one line it is

    def on_round(record: RoundRecord, elapsed: float) -> None:
        fields = {"loss": f"{record.train_loss:.3f}"}
        if record.test_accuracy is not None:
            fields["acc"] = f"{record.test_accuracy:.4f}"
        progress.update(task, completed=record.round, **fields)

    try:
        history = simulate(config, serial=serial, on_start=on_start, on_round=on_round, resume=resume)
    finally:
        if progress.live.is_started:
            progress.stop()
    final = history[-1]
    best = max(history, key=lambda row: row["test_accuracy"])
    out.print(
        f"{config.algorithm.name}: final test accuracy {final['test_accuracy']:.4f} "
        f"(loss {final['test_loss']:.4f}) after {final['round']} rounds; "
        f"best {best['test_accuracy']:.4f} at round {best['round']}; always guessing the commonest "
        f"class scores {setup['majority_class']:.4f}; "
        f"{final['elapsed_s']:.1f} s of rounds{' since the run began' if resume else ''}, "
        f"{time.perf_counter() - started:.1f} s in {'this resumed part' if resume else 'all'}"
    )
    out.print(f"results: {config.output}")
    return history
