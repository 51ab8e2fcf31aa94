"""The executor pool: the Ray backend of the round loop. A model is a list of ObjectRefs, one per
state entry; the pool hands refs to executors and gets refs back, and never reads model bytes."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import ray
from ray.actor import ActorHandle

from fedmr_ray.train import ClientResult, TrainJob

Model = list[ray.ObjectRef]

# Calls queued per executor: the next client is already waiting when one finishes.
IN_FLIGHT_PER_EXECUTOR = 2


class ExecutorPool:
    def __init__(self, executors: Sequence[ActorHandle], num_entries: int, client_sizes: np.ndarray):
        self.executors = list(executors)
        self.num_entries = num_entries
        self.client_sizes = client_sizes

    def put(self, entries: list[np.ndarray]) -> Model:
        return [ray.put(entry) for entry in entries]

    def train(self, jobs: Sequence[TrainJob], models: Sequence[Model]) -> tuple[list[Model], list[ClientResult]]:
        """Largest clients first, each to the first executor with a free slot: the round ends
        when the slowest executor does, so balance matters more than order."""
        pending = deque(sorted(range(len(jobs)), key=lambda i: -self.client_sizes[jobs[i].client]))
        free = deque(self.executors * IN_FLIGHT_PER_EXECUTOR)
        new_models: list[Model] = [[] for _ in jobs]
        result_refs: list[ray.ObjectRef | None] = [None] * len(jobs)
        in_flight: dict[ray.ObjectRef, ActorHandle] = {}
        while pending or in_flight:
            while pending and free:
                i, executor = pending.popleft(), free.popleft()
                refs = executor.train.options(num_returns=self.num_entries + 1).remote(jobs[i], *models[i])
                new_models[i], result_refs[i] = refs[:-1], refs[-1]
                in_flight[refs[-1]] = executor
            done, _ = ray.wait(list(in_flight), num_returns=1, fetch_local=False)
            for ref in done:
                free.append(in_flight.pop(ref))
        return new_models, ray.get(result_refs)

    def mean(self, models: Sequence[Model], weights: np.ndarray) -> Model:
        """One call per entry, spread over the executors: each reads K arrays of one entry."""
        return [
            self.executors[e % len(self.executors)].mean.remote(weights, *[m[e] for m in models])
            for e in range(self.num_entries)
        ]

    def evaluate(self, model: Model) -> tuple[float, float]:
        return ray.get(self.executors[0].evaluate.remote(*model))

    def fetch(self, model: Model) -> list[np.ndarray]:
        return ray.get(model)
