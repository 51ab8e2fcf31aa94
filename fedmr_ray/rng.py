"""Every random number derives from (seed, stream, round, client id): never from arrival order or
placement, so a run gives the same numbers on one executor or sixty-four."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    DATA = 1
    INIT = 2
    SAMPLE = 3
    TRAIN = 4
    RECOMBINE = 5
    SERVER = 6  # server-side computations (FedGen's generator)
    PARTITION = 7  # which samples each client holds (iid, dirichlet, shards, the reference's cases)


def generator(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), *map(int, keys)]))


def torch_seed(seed: int, stream: Stream, *keys: int) -> int:
    """A 63-bit seed for torch.manual_seed, derived like `generator`."""
    ss = np.random.SeedSequence([int(seed), int(stream), *map(int, keys)])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
