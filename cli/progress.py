"""Progress over `fedmr_ray.simulate`, and the summary at the end.

On a terminal, a live bar. Elsewhere (kubectl logs, `ray job logs`, a file) a plain line per
evaluated round and at least one every LINE_EVERY seconds: round, accuracy, losses, elapsed time
and the time left. `--log-format json` gives the same events as JSON lines, for machines.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fedmr_ray import SimulationConfig, simulate
from fedmr_ray.federation import RoundRecord
from fedmr_ray.results import SimulationResult

LINE_EVERY = 30.0  # seconds: the longest silence of the line views
LOG_FORMATS = ("text", "json")


class Bar:
    """The live bar, on a terminal."""

    def __init__(self, config: SimulationConfig, err: Console):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("test acc {task.fields[acc]}  train loss {task.fields[loss]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err, transient=False)
        self.task = self.progress.add_task("round", total=config.rounds, acc="-", loss="-")
        self.err = err

    def setup(self, text: str, fields: dict[str, Any]) -> None:
        self.err.print(text)
        self.progress.start()  # only now: a setup error stays the one line it is

    def round(self, record: RoundRecord, elapsed: float, eta: float | None) -> None:
        fields = {"loss": f"{record.train_loss:.3f}"}
        if record.test_accuracy is not None:
            fields["acc"] = f"{record.test_accuracy:.4f}"
        self.progress.update(self.task, completed=record.round, **fields)

    def close(self) -> None:
        if self.progress.live.is_started:
            self.progress.stop()


class Lines:
    """Plain lines (or JSON lines), for logs: one per evaluated round, and one at least every
    LINE_EVERY seconds."""

    def __init__(self, config: SimulationConfig, err: Console, as_json: bool):
        self.config, self.err, self.as_json = config, err, as_json
        self.last = time.monotonic()

    def _emit(self, event: str, text: str, fields: dict[str, Any]) -> None:
        line = json.dumps({"event": event, **fields}) if self.as_json else f"fedmr-ray: {text}"
        self.err.file.write(line + "\n")
        self.err.file.flush()
        self.last = time.monotonic()

    def setup(self, text: str, fields: dict[str, Any]) -> None:
        self._emit("setup", text, fields)

    def round(self, record: RoundRecord, elapsed: float, eta: float | None) -> None:
        if record.test_accuracy is None and time.monotonic() - self.last < LINE_EVERY:
            return
        fields = {"round": record.round, "rounds": self.config.rounds, "train_loss": record.train_loss,
                  "test_accuracy": record.test_accuracy, "test_loss": record.test_loss,
                  "elapsed_s": round(elapsed, 3), "eta_s": None if eta is None else round(eta, 1)}
        text = f"round {record.round}/{self.config.rounds}"
        if record.test_accuracy is not None:
            text += f" test accuracy {record.test_accuracy:.4f} test loss {record.test_loss:.4f}"
        text += f" train loss {record.train_loss:.4f} elapsed {elapsed:.1f} s"
        if eta is not None:
            text += f" eta {eta:.0f} s"
        self._emit("round", text, fields)

    def close(self) -> None:
        pass


def run_with_progress(config: SimulationConfig, *, serial: bool, quiet: bool, resume=None,
                      resume_if_exists: bool = False, log_format: str = "text", tensorboard: str | None = None
                      ) -> SimulationResult:
    err, out = Console(stderr=True), Console(soft_wrap=True)
    started = time.perf_counter()
    view = None if quiet else (Bar(config, err) if err.is_terminal and log_format == "text"
                               else Lines(config, err, log_format == "json"))
    setup: dict = {}
    first: list[tuple[int, float]] = []  # (round, elapsed) of the first round this process ran

    def on_start(summary: dict) -> None:
        setup.update(summary)
        where = "this process (serial)" if serial else f"{summary['num_executors']} executors"
        if summary["vectorised"]:
            where += f" training up to {config.train.client_batch} clients at once"
        seconds = time.perf_counter() - started
        if view is not None:
            view.setup(f"{config.algorithm.name}: {config.clients} clients, {config.cohort_size} per round, "
                       f"{summary['train_samples']:,} training samples; {where} on "
                       f"{', '.join(summary['devices'])}; setup {seconds:.1f} s",
                       {"algorithm": config.algorithm.name, "clients": config.clients, "cohort": config.cohort_size,
                        "executors": summary["num_executors"], "devices": summary["devices"],
                        "setup_s": round(seconds, 3)})

    def on_round(record: RoundRecord, elapsed: float) -> None:
        if not first:
            first.append((record.round - 1, elapsed))
        done, since = record.round - first[0][0], elapsed - first[0][1]
        eta = since / done * (config.rounds - record.round) if done > 0 else None
        if view is not None:
            view.round(record, elapsed, eta)

    try:
        result = simulate(config, serial=serial, on_start=on_start, on_round=on_round, resume=resume,
                          resume_if_exists=resume_if_exists, tensorboard=tensorboard)
    finally:
        if view is not None:
            view.close()
    final = result.final
    best = max(result.evaluated, key=lambda row: row["test_accuracy"])
    if not setup:  # --resume-if-exists found the run finished: nothing ran
        out.print(f"{config.algorithm.name}: already finished in {config.output}: final test accuracy "
                  f"{final['test_accuracy']:.4f} after {final['round']} rounds")
        return result
    out.print(
        f"{config.algorithm.name}: final test accuracy {final['test_accuracy']:.4f} "
        f"(test loss {final['test_loss']:.4f}) after {final['round']} rounds; "
        f"best {best['test_accuracy']:.4f} at round {best['round']}; always guessing the commonest "
        f"class scores {setup['majority_class']:.4f}; "
        f"{final['elapsed_s']:.1f} s of rounds{' since the run began' if resume else ''}, "
        f"{time.perf_counter() - started:.1f} s in {'this resumed part' if resume else 'all'}"
    )
    out.print(f"results: {config.output}")
    return result
