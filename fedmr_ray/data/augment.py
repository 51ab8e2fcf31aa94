"""CIFAR augmentation (`--augment`): random crop with 4-pixel padding and horizontal flip, the usual
torchvision RandomCrop(32, padding=4) + RandomHorizontalFlip, on a whole batch at once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

PADDING = 4
# The inputs are already normalised, so torchvision's zero padding of the raw image (black) is
# each channel's -mean / std here (FederatedDataset.black): -1 under (x - 0.5) / 0.5.
PAD_VALUE = -1.0


def augment(x: torch.Tensor, generator: torch.Generator, padding: int = PADDING,
            pad_value: float | Sequence[float] = PAD_VALUE) -> torch.Tensor:
    """A random crop of each image of the batch [B, C, H, W], padded by `padding` pixels on every
    side with `pad_value` (one, or one per channel), then flipped left-right with probability 1/2.
    The draws come from `generator` (on the CPU) alone, so the same generator state gives the same
    batch on any device."""
    batch, channels, height, width = x.shape  # pad_value: one, or one per channel
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    if isinstance(pad_value, (int, float)):
        padded = F.pad(x, (padding, padding, padding, padding), value=pad_value)
    else:
        padded = torch.empty((batch, channels, height + 2 * padding, width + 2 * padding), dtype=x.dtype,
                             device=x.device)
        padded[:] = torch.tensor(pad_value, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        padded[:, :, padding:padding + height, padding:padding + width] = x
    rows = top[:, None] + torch.arange(height)  # [B, H]
    cols = left[:, None] + torch.arange(width)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    samples = torch.arange(batch)[:, None, None]
    index = [t.to(x.device) for t in (samples, rows[:, :, None], cols[:, None, :])]
    # advanced indexing on dims 0, 2, 3 around the channel slice puts the channels last
    return padded[index[0], :, index[1], index[2]].permute(0, 3, 1, 2).contiguous()
