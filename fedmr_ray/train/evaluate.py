"""Evaluation of a model on a test set: accuracy and mean cross-entropy, in batches."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EVAL_BATCH = 1024


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the model, in eval mode, on (x, y)."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for start in range(0, len(y), EVAL_BATCH):
            logits = model(x[start:start + EVAL_BATCH])
            target = y[start:start + EVAL_BATCH]
            loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
    return correct / len(y), loss / len(y)


def evaluate_per_client(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, offsets: np.ndarray) -> np.ndarray:
    """[2, clients]: each client's accuracy and mean cross-entropy, client c's samples being rows
    offsets[c]:offsets[c + 1] of (x, y) (NaN for a client without any)."""
    model.eval()
    correct, losses = [], []
    with torch.no_grad():
        for start in range(0, len(y), EVAL_BATCH):
            logits = model(x[start:start + EVAL_BATCH])
            target = y[start:start + EVAL_BATCH]
            losses.append(F.cross_entropy(logits, target, reduction="none").double().cpu())
            correct.append((logits.argmax(dim=1) == target).double().cpu())
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    counts = np.diff(offsets).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([np.bincount(owner, torch.cat(values).numpy(), minlength=len(counts)) / counts
                         for values in (correct, losses)]) if len(y) else np.full((2, len(counts)), np.nan)
