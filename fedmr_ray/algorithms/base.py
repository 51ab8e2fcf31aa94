"""What every algorithm shares: what it is built from, the server step it asks the runtime to carry
out, and the arithmetic they are made of. What it adds to local training implements the
trainer's hooks (train/hooks.py).

An algorithm never sees where models live. It answers questions in numbers (which permutation,
which weights) and hands over pure functions (a local rule, a server task); the runtime moves
the entries (numpy arrays here, object-store references in runtime/) and runs the functions
where the data is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fedmr_ray.config import Settings
from fedmr_ray.train.hooks import LocalRule

if TYPE_CHECKING:
    from fedmr_ray.models.info import ModelInfo

Entries = list[np.ndarray]


@dataclass(frozen=True)
class NoSettings(Settings):
    """The settings of an algorithm that has none of its own."""


@dataclass(frozen=True)
class AlgorithmContext:
    """What an algorithm may know when it is built: its own settings (its module's `Settings`),
    the model's layout, the clients' sizes (one per client: the run's client count) and their
    label counts (FedGen's server weighs clients by them), the dataset's name and the seed."""

    settings: Any
    info: ModelInfo
    client_sizes: np.ndarray
    num_classes: int
    dataset: str
    seed: int
    label_counts: Callable[[np.ndarray], np.ndarray]  # clients -> [clients, classes]


@dataclass(frozen=True)
class StateUpdate:
    """server_state[name] <- keep x server_state[name] + sum_j after[j] x (client j's state of
    the same name after this round) + before[j] x (its state before; none counts as zero)."""

    keep: float
    after: np.ndarray
    before: np.ndarray


@dataclass(frozen=True)
class Mutation:
    """K models mutated around the global model g = sum_i weights[i] x trained[i] (FedMut): model
    j's entry e is g[e] + radius x coefficients[j, e] x (g[e] - p[e]), where p is the global model
    of the round before (the server state `state`; before the first round's, the model the
    clients started from); g becomes that state. The coefficients take a few values: each is
    one combination of g and p, from which the models pick their entries."""

    coefficients: np.ndarray  # (K, L)
    radius: float
    state: str = "global"


@dataclass(frozen=True)
class ServerStep:
    """What becomes of the K trained models: recombined by `perms` ((L, K), see recombine.py),
    mutated around their weighted sum (`mutation`, with `weights`), or replaced by `copies`
    copies of keep x (the model they started from) + sum_i weights[i] x trained[i]; and how the
    server state follows from the clients' states."""

    perms: np.ndarray | None = None
    weights: np.ndarray | None = None
    keep: float = 0.0
    copies: int = 1
    state: dict[str, StateUpdate] = field(default_factory=dict)
    mutation: Mutation | None = None
    # the model evaluated, where neither the server's model nor global_weights' sum (FedExP's):
    # (keep, weights): keep x (the model they started from) + sum_i weights[i] x trained[i]
    evaluated: tuple[float, np.ndarray] | None = None


@dataclass(frozen=True)
class Statistics:
    """Numbers the server step needs from the models themselves (FedExP's norms): run where the
    data is, as fn([the model the clients started from, trained[0], ...], **kwargs) -> array,
    and handed to server_step as `stats`."""

    fn: Callable[..., np.ndarray]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerTask:
    """A server computation that is not entry by entry (FedGen's generator): run where the data
    is, as fn(state, inputs, **kwargs) -> new state, where `state` is the server state `state`
    and inputs[j] the entries `entries` of trained model j."""

    fn: Callable[..., Entries]
    state: str
    entries: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sampling:
    """A cohort drawn by a function of the clients' stored states (CluSamp): run where the data
    is, as fn(states, clients, **kwargs) -> cohort, where states[i] is client clients[i]'s state
    `state`, for every client that has one; where `server`, as fn([server state `state`], **kwargs)."""

    fn: Callable[..., np.ndarray]
    state: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    server: bool = False


class Algorithm:
    """The defaults: one server model, plain local training, uniform sampling, no server state."""

    local: LocalRule | None = None

    def num_server_models(self, cohort_size: int) -> int:
        """How many models the server keeps; slot j of a cohort trains model j % that number."""
        return 1

    def initialisations(self, count: int) -> list[int]:
        """Which initialisation (seeded by (seed, index)) each of the server's models starts from."""
        return [0] * count

    def initial_server_state(self) -> dict[str, Entries]:
        return {}

    def sampling(self, round_index: int, cohort_size: int) -> Sampling | None:
        """None: the cohort is drawn uniformly without replacement."""
        return None

    def statistics(self, round_index: int, sizes: np.ndarray) -> Statistics | None:
        """None: the server step needs no numbers from the models (see Statistics)."""
        return None

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        """Given the trained clients' sample counts (slot order), what the server does (with
        `statistics`, called with its numbers as `stats` too)."""
        raise NotImplementedError

    def server_task(self, round_index: int, cohort: np.ndarray) -> ServerTask | None:
        """A computation on the trained models after the server step, or None."""
        return None

    def global_weights(self, sizes: np.ndarray) -> np.ndarray:
        """Weights of the trained models in the global model that is evaluated."""
        raise NotImplementedError


def uniform_weights(count: int) -> np.ndarray:
    return np.full(count, 1.0 / count)


def size_weights(sizes: np.ndarray) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=np.float64)
    return sizes / sizes.sum()


# A weighted sum of many models is taken in chunks of this many: partial sums, then their sum.
# The chunks bound what one call holds (FedMR keeps 10,000 models for 100,000 clients), and
# since every backend sums in the same chunks, they agree to the bit.
SUM_CHUNK = 128


def partial_sum(entries: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum_i weights[i] * entries[i], accumulated in float64 in the given order."""
    total = np.zeros(entries[0].shape, dtype=np.float64)
    for weight, entry in zip(weights, entries, strict=True):
        total += float(weight) * entry
    return total


def finish_sum(partials: Sequence[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """The sum of partial sums, in order, in `dtype`."""
    total = partials[0]
    for partial in partials[1:]:
        total = total + partial
    return total.astype(dtype)


def weighted_sum(entries: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum_i weights[i] * entries[i] in float64, SUM_CHUNK terms at a time, in the entries' dtype
    (integer buffers such as BatchNorm's counter are truncated, as torch's copy_ does)."""
    partials = [partial_sum(entries[i:i + SUM_CHUNK], weights[i:i + SUM_CHUNK])
                for i in range(0, len(entries), SUM_CHUNK)]
    return finish_sum(partials, entries[0].dtype)
