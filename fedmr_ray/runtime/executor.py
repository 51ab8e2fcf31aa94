"""An executor: one Ray actor hosting many clients, one resident model, the dataset by reference."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import ray
import torch

from fedmr_ray.algorithms.base import finish_sum, partial_sum, weighted_sum
from fedmr_ray.runtime.entries import CallLayout, Pack, Where, bundle, pack, pick
from fedmr_ray.runtime.stamps import process_started
from fedmr_ray.setup import Setup
from fedmr_ray.train import ClientTrainer, TrainJob, step_cost


# The calls of every round do not report Ray task events (the dashboard's task list,
# ray.timeline()): recording and sending them cost 2-3% of a 1-epoch fmnist cnn round, where the
# calls are many and short (rounds alternating with and without, in one run: 0.3539 vs 0.3423 s
# and 0.3839 vs 0.3753 s medians). Executors, their placement and failures still show.
QUIET = ray.method(enable_task_events=False)


@ray.remote
class Executor:
    def __init__(self, setup: Setup, threads: int, use_gpu: bool, name: str = "executor"):
        """`setup`: the run's Setup, its arrays read in place from the object store; `name`: how its
        clients' results (clients.parquet) name it."""
        # when each step of its start ended (startup(); its imports before `init`)
        self.stamps = {"process": process_started(), "init": time.time()}
        # intra-op threads follow the CPUs the actor holds: more would fight the other executors
        torch.set_num_threads(threads)
        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        config = setup.config
        self.trainer = ClientTrainer(setup.spec, setup.data, config.train, config.seed, device, setup.algorithm.local,
                                     config.data.augment)
        self.trainer.name = name
        self.stamps["trainer"] = time.time()  # the vectorisation check included (train/lanes.py)

    def describe(self) -> tuple[str, bool, tuple[float, float] | None]:
        """(the device it trains on, whether it trains several clients at once, its step's cost:
        seconds fixed and per sample; None where it trains several at once, whose groups the pool
        plans by samples alone, see ExecutorPool.step_cost)."""
        cost = None if self.trainer.vectorised else step_cost(self.trainer)
        self.stamps["described"] = time.time()
        return str(self.trainer.device), self.trainer.vectorised, cost

    def startup(self) -> dict[str, float]:
        """When its process started and each step of its start ended, on the wall clock."""
        return self.stamps

    # Calls receive entries as the distinct objects holding them and where each entry is among
    # them (runtime/entries.py).

    @QUIET
    def train(self, jobs: list[TrainJob], layout: CallLayout, alone: tuple[bool, ...], where: Where, *objects
              ) -> tuple[np.ndarray | list, ...]:
        """The jobs' models, stored states and the server state, flat as `layout` says; returns
        per job its new model's entries and new states' (layout.writes), bundled as `alone` says
        for one job's, then the results."""
        models, states, server = layout.split(pick(where, objects))
        out: list = []
        trained = self.trainer.train_many(jobs, models, states, server)
        for t in trained:
            out += t.entries
            for name in layout.writes:
                out += t.state[name]
        return (*bundle(out, alone * len(trained)), [t.result for t in trained])

    # The server-side calls end their returns with True: a small marker the pool waits on to
    # learn that the call ran (or that its executor died) without fetching the results.

    @QUIET
    def combine(self, weights: np.ndarray, where: Where, *objects) -> tuple[Pack, bool]:
        """Weighted sums of one or more entries, each given as its len(weights) terms in turn;
        together in one pack (a sum is read whole: evaluated, or trained from)."""
        entries, n = pick(where, objects), len(weights)
        return pack([weighted_sum(entries[i:i + n], weights) for i in range(0, len(entries), n)]), True

    @QUIET
    def partial(self, weights: np.ndarray, where: Where, *objects) -> tuple[np.ndarray, str]:
        """A chunk's partial sum; its marker is the entries' dtype, which the total takes."""
        entries = pick(where, objects)
        return partial_sum(entries, weights), entries[0].dtype.str

    @QUIET
    def finish(self, dtype: str, *partials: np.ndarray) -> tuple[np.ndarray, bool]:
        return finish_sum(partials, np.dtype(dtype)), True

    def run(self, fn: Callable, kwargs: dict[str, Any], size: int, lengths: list[int], where: Where, *objects):
        entries = pick(where, objects)
        return (*fn(entries[:size], _split(entries[size:], lengths), **kwargs), True)

    def call(self, fn: Callable, kwargs: dict[str, Any], lengths: list[int], where: Where, *objects
             ) -> tuple[Any, bool]:
        return fn(_split(pick(where, objects), lengths), **kwargs), True

    def evaluate(self, where: Where, *objects, per_client: bool = False) -> tuple[Any, bool]:
        """(accuracy, loss) on the test set; per client, [2, clients] on their held-out splits."""
        entries = pick(where, objects)
        return (self.trainer.evaluate_clients(entries) if per_client else self.trainer.evaluate(entries)), True


def _split(flat, lengths: list[int]) -> list[list[np.ndarray]]:
    out, pos = [], 0
    for length in lengths:
        out.append(list(flat[pos:pos + length]))
        pos += length
    return out
