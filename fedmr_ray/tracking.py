"""Experiment tracking through the ecosystem's libraries (optional extras, not dependencies): each
round's row of metrics.parquet, the same numbers, as scalars against the round.

    pip install 'fedmr-ray[tracking]'   # TensorBoard
    fedmr-ray simulate --output runs/a --tensorboard runs/tb && tensorboard --logdir runs/tb
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedmr_ray.errors import SettingError, unwritable

# what is not a number to plot
NOT_SCALARS = ("round", "algorithm", "stage")


class TensorBoard:
    """TensorBoard events in logdir/<run> (the run directory's name, so that one logdir compares
    runs): one scalar per metrics column and round, float32 as TensorBoard stores them. Nothing is
    written before the first round; a resumed run appends the rounds it runs."""

    def __init__(self, logdir: str, run: str | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise self.refused(logdir, "needs the tensorboard package: pip install 'fedmr-ray[tracking]' "
                               "(or pip install tensorboard)") from None
        path = Path(logdir).absolute()
        if path.exists() and not path.is_dir():
            raise self.refused(logdir, "exists and is not a directory")
        problem = unwritable(path / "run")
        if problem is not None:
            raise self.refused(logdir, f"cannot create it ({problem})")
        self.path = path / run if run else path
        self.make = SummaryWriter
        self.writer = None

    @staticmethod
    def refused(logdir: str, problem: str) -> SettingError:
        return SettingError("tensorboard", "--tensorboard", logdir, problem, quote=False)

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            self.writer = self.make(str(self.path))
        for name, value in row.items():
            if name not in NOT_SCALARS and value is not None:
                self.writer.add_scalar(name, value, row["round"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
