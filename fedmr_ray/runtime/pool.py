"""The executor pool: the Ray backend of the round loop. A model is a list of ObjectRefs, one per
state entry; the pool hands refs to executors and gets refs back, and never reads model bytes."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import ray
from ray.actor import ActorHandle

from fedmr_ray.config import TrainConfig
from fedmr_ray.train import ClientResult, TrainJob

Model = list[ray.ObjectRef]

# Calls queued per executor: the next group is already waiting when one finishes.
IN_FLIGHT_PER_EXECUTOR = 2
# Groups per executor and round: few, so that an executor trains many clients at once, and
# more than one, so that an executor that finishes early takes another.
GROUPS_PER_EXECUTOR = 2


def plan_groups(costs: Sequence[float], parts: int) -> list[list[int]]:
    """The cohort's positions split into at most `parts` groups of about equal cost (longest
    processing time first: each client, the costliest first, joins the cheapest group so far),
    the costliest group first; one executor call each."""
    groups: list[list[int]] = [[] for _ in range(min(parts, len(costs)))]
    loads = [0.0] * len(groups)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += costs[i]
    return [groups[g] for g in sorted(range(len(groups)), key=lambda g: -loads[g])]


class ExecutorPool:
    def __init__(self, executors: Sequence[ActorHandle], num_entries: int, client_sizes: np.ndarray,
                 train: TrainConfig):
        self.executors = list(executors)
        self.num_entries = num_entries
        self.client_sizes = client_sizes
        self.train_config = train

    def put(self, entries: list[np.ndarray]) -> Model:
        return [ray.put(entry) for entry in entries]

    def train(self, jobs: Sequence[TrainJob], models: Sequence[Model]) -> tuple[list[Model], list[ClientResult]]:
        """Groups of clients, the costliest first, each to the first executor with a free slot:
        the round ends when the slowest executor does, so balance matters more than order."""
        costs = self.train_config.local_steps(self.client_sizes[[job.client for job in jobs]])
        pending = deque(plan_groups(costs.tolist(), len(self.executors) * GROUPS_PER_EXECUTOR))
        free = deque(self.executors * IN_FLIGHT_PER_EXECUTOR)
        new_models: list[Model] = [[] for _ in jobs]
        result_refs: list[tuple[list[int], ray.ObjectRef]] = []
        in_flight: dict[ray.ObjectRef, ActorHandle] = {}
        size = self.num_entries
        while pending or in_flight:
            while pending and free:
                group, executor = pending.popleft(), free.popleft()
                refs = executor.train.options(num_returns=len(group) * size + 1).remote(
                    [jobs[i] for i in group], *[ref for i in group for ref in models[i]])
                for k, i in enumerate(group):
                    new_models[i] = refs[k * size:(k + 1) * size]
                result_refs.append((group, refs[-1]))
                in_flight[refs[-1]] = executor
            done, _ = ray.wait(list(in_flight), num_returns=1, fetch_local=False)
            for ref in done:
                free.append(in_flight.pop(ref))
        results: list[ClientResult | None] = [None] * len(jobs)
        for (group, _), group_results in zip(result_refs, ray.get([ref for _, ref in result_refs])):
            for i, result in zip(group, group_results):
                results[i] = result
        return new_models, results

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
