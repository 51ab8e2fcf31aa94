"""Evaluation of a model on a test set: accuracy and mean cross-entropy, in batches."""

from __future__ import annotations

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
