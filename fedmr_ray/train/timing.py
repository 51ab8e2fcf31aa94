"""The cost of a local step, timed on a trainer's resident model: what the executor pool weighs
clients by to balance its groups (runtime/pool.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from fedmr_ray.train.trainer import ClientTrainer


def step_cost(trainer: ClientTrainer) -> tuple[float, float]:
    """(seconds of a local step's fixed part, seconds per sample of its batch), timed on the
    trainer's resident model (the fastest of 2 steps on a full batch and of 3 on one sample, after
    one to warm up; the entries restored after)."""
    saved = [t.detach().clone() for t in trainer.entries]
    rows = np.arange(min(trainer.train_config.batch_size, len(trainer._y)))
    buffers = [torch.zeros_like(p) for p in trainer.params.values()]
    total = torch.zeros((), device=trainer.device)

    def sync() -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)

    def fastest(batch: np.ndarray, tries: int) -> float:
        times = []
        for _ in range(tries):
            sync()
            start = time.perf_counter()
            trainer.run([batch], buffers, total)
            sync()
            times.append(time.perf_counter() - start)
        return min(times)

    try:
        fastest(rows[:1], 1)  # warm-up
        one, full = fastest(rows[:1], 3), fastest(rows, 2)
    finally:
        trainer.load(saved)
    per_sample = max(full - one, 0.0) / max(len(rows) - 1, 1)
    return max(one - per_sample, 0.0), per_sample
