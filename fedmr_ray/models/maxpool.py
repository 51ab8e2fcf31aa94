"""2x2 max-pooling of stride 2 on the CPU, bit for bit torch's and faster on large inputs.

torch's CPU kernel walks each window element by element, a branch per element, with no vector
instructions. Here the windows' four corners are copied out as four contiguous planes, and the
maximum and which corner holds it come from a few vectorised whole-tensor operations. On the
development machine (one thread, `python -m benchmarks.maxpool`), forward and backward together take
0.43x torch's time on the 28x28 cnn's first pooling input ([50, 6, 24, 24]) and 0.39x on the
femnist cnn's ([50, 16, 24, 24]); in the trainer's loop the cnn's first pooling took a median
0.35 ms instead of 0.55 ms. Small inputs keep torch's kernel (this path's fixed cost outweighs
its gain). The result is torch's to the bit: the value is read at the index torch's kernel picks
(the first element holding the maximum, row by row), and torch's own backward kernel takes that
index. Where a window's maximum is not finite (NaN or infinity anywhere) the whole call is
torch's kernel.

Models keep nn.MaxPool2d (the plain PyTorch baseline in benchmarks/ runs them as they are); the
trainer swaps in FastMaxPool2d on its resident model (use_fast_pools) once a check here shows
the same numbers.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# Inputs with fewer elements keep torch's kernel: this path's fixed cost (a dozen tensor ops and
# the autograd function) outweighs its gain below about 65k elements (measured on the
# development machine: 0.78x torch's time at [20, 6, 24, 24], 1.4x at [50, 16, 8, 8]).
FAST_MIN_ELEMENTS = 1 << 16


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n, c, height, width = x.shape
        h, w = height // 2, width // 2
        # the corners a (top left), b (top right), c (bottom left), d (bottom right), each flat
        a, b, c_, d = x.view(n * c * h, 2, w, 2).permute(1, 3, 0, 2).reshape(4, n * c * h * w).unbind(0)
        top = torch.maximum(torch.maximum(a, b), torch.maximum(c_, d))
        total = float(top.sum())
        if total != total or abs(total) == float("inf"):  # a NaN or an infinity: torch's kernel
            out, index = torch.ops.aten.max_pool2d_with_indices(x, [2, 2], [2, 2])
        else:
            # the kernel scans a, b, c, d and keeps the first maximum: its offset in the window is
            # 0 if a holds it, else 1 if b, else `width` if c, else width + 1:
            # below[a] * (1 + below[b] * (width - 1 + below[c])), below[v] = 1 where v < maximum
            below = torch.empty((3, top.numel()), dtype=x.dtype)
            for row, corner in zip(below, (a, b, c_)):
                torch.gt(top, corner, out=row)
            offset = below[2].add_(width - 1).mul_(below[1]).add_(1).mul_(below[0])
            index = offset.view(n * c, h * w).add_(_corners(h, w, width, x.dtype)).to(torch.int64)
            out = x.view(n * c, height * width).gather(1, index).view(n, c, h, w)
            index = index.view(n, c, h, w)
        ctx.save_for_backward(x, index)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, index = ctx.saved_tensors
        return torch.ops.aten.max_pool2d_with_indices_backward(grad, x, [2, 2], [2, 2], [0, 0], [1, 1], False, index)


@functools.cache
def _corners(h: int, w: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    """Each window's top-left element's flat index in its plane (exact in the float dtype: planes
    are far below 2**24 elements)."""
    return ((torch.arange(h) * (2 * width)).view(h, 1) + torch.arange(w) * 2).reshape(-1).to(dtype)


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, 2): the vectorised path for large float CPU batches of even height and
    width, torch's kernel otherwise."""
    if (x.device.type == "cpu" and x.dim() == 4 and x.dtype in (torch.float32, torch.float64)
            and x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0 and x.numel() >= FAST_MIN_ELEMENTS
            and x.is_contiguous()):
        return _MaxPool2x2.apply(x)
    return F.max_pool2d(x, 2)


class FastMaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d(2, 2) through max_pool2x2."""

    def __init__(self):
        super().__init__(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2x2(x)


def _plain_2x2(module: nn.Module) -> bool:
    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    return (type(module) is nn.MaxPool2d and pair(module.kernel_size) == (2, 2) and pair(module.stride) == (2, 2)
            and pair(module.padding) == (0, 0) and pair(module.dilation) == (1, 1)
            and not module.ceil_mode and not module.return_indices)


def use_fast_pools(model: nn.Module) -> int:
    """Swaps every nn.MaxPool2d(2, 2) of the model (no padding, dilation or ceil mode) for a
    FastMaxPool2d, if max_pool2x2 gives torch's numbers here; how many it swapped."""
    targets = [(parent, name) for parent in model.modules() for name, child in parent.named_children()
               if _plain_2x2(child)]
    if not targets or not fast_pool_is_exact():
        return 0
    for parent, name in targets:
        setattr(parent, name, FastMaxPool2d())
    return len(targets)


@functools.cache
def fast_pool_is_exact() -> bool:
    """Whether max_pool2x2 gives torch's outputs (to the bit) and gradients here, on inputs full
    of ties, with negative zeros, with NaNs and with infinities, and on a small input."""
    generator = torch.Generator().manual_seed(0)
    shape = (2, 8, 64, 64)  # FAST_MIN_ELEMENTS: the vectorised path
    ties = torch.randint(-2, 3, shape, generator=generator).double()
    zeros = torch.where(ties == 0, -0.0, ties)
    nan, inf = ties.clone(), ties.clone()
    nan[0, 0, :2, :2] = torch.tensor([[1.0, float("nan")], [float("nan"), 2.0]])
    inf[1, 3, 4, 4] = float("inf")
    inputs = [ties, zeros, nan, inf, ties[:, :2, :8, :8].contiguous(), torch.randn(shape, generator=generator)]
    return all(matches_torch(x, generator) for x in inputs + [v.float() for v in inputs])


def matches_torch(x: torch.Tensor, generator: torch.Generator) -> bool:
    """Whether max_pool2x2 gives F.max_pool2d's output bits and input gradient on x, for a
    gradient from the generator flowing back."""
    mine, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = max_pool2x2(mine), F.max_pool2d(theirs, 2)
    grad = torch.randn(ref.shape, generator=generator, dtype=x.dtype)
    out.backward(grad)
    ref.backward(grad)
    bits = torch.int64 if x.dtype == torch.float64 else torch.int32
    return torch.equal(out.detach().view(bits), ref.detach().view(bits)) and torch.equal(mine.grad, theirs.grad)
