"""The reference's CharLSTM (HMHelloWorld/FedMR models/lstm.py, which models/__init__.py exports),
for LEAF Shakespeare: next-character prediction from a line of characters."""

from __future__ import annotations

import torch
from torch import nn

from fedmr_ray.errors import SettingError
from fedmr_ray.models.shapes import shape_text


class CharLSTM(nn.Module):
    """Embedding vocabulary x 8, a 2-layer LSTM of 256 (batch first), linear 256 -> vocabulary on
    the last step's output. The inputs are character indices (any integer dtype); the labels the
    next character, so the vocabulary is the number of classes. No dropout: models/lstm.py has
    none (models/models.py's copy, which the reference does not import, applies one)."""

    def __init__(self, vocabulary: int, embedding: int = 8, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, vocabulary)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(x.long()))
        return self.out(h[:, -1, :])


def lstm(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    if len(input_shape) != 1:
        raise SettingError("model", "--model", "lstm", f"needs lines of characters (shakespeare), not input of "
                           f"shape {shape_text(input_shape)}", quote=False)
    return CharLSTM(num_classes)
