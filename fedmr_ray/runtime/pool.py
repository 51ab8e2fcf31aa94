"""The executor pool: the Ray backend of the round loop. A model is a list of ObjectRefs, one per
state entry; the pool hands refs to executors and gets refs back, and never reads model bytes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class CallLayout:
    """How an executor call's flat arguments divide: per job its model's L entries, then L for
    each stored state it sends (`reads[k]`); then the server state (name, entry count)."""

    entries: int
    reads: tuple[tuple[str, ...], ...]
    server: tuple[tuple[str, int], ...]
    writes: tuple[str, ...]  # the states each job returns after its model, L entries each

    def split(self, flat: Sequence) -> tuple[list, list[dict], dict]:
        pos, size, models, states = 0, self.entries, [], []
        for names in self.reads:
            models.append(list(flat[pos:pos + size]))
            pos += size
            states.append({})
            for name in names:
                states[-1][name] = list(flat[pos:pos + size])
                pos += size
        server = {}
        for name, count in self.server:
            server[name] = list(flat[pos:pos + count])
            pos += count
        return models, states, server


class ExecutorPool:
    """The Ray backend of the round loop (federation.Backend)."""

    def __init__(self, executors: Sequence[ActorHandle], num_entries: int, client_sizes: np.ndarray,
                 train: TrainConfig, writes: tuple[str, ...] = ()):
        self.executors = list(executors)
        self.num_entries = num_entries
        self.client_sizes = client_sizes
        self.train_config = train
        self.writes = writes  # the client states the algorithm's local rule writes
        self._next = 0

    def put(self, entries: list[np.ndarray]) -> Model:
        return [ray.put(entry) for entry in entries]

    def train(self, jobs: Sequence[TrainJob], models: Sequence[Model], states: Sequence[dict[str, Model]],
              server: dict[str, Model]) -> tuple[list[Model], list[ClientResult], list[dict[str, Model]]]:
        """Groups of clients, the costliest first, each to the first executor with a free slot:
        the round ends when the slowest executor does, so balance matters more than order."""
        costs = self.train_config.local_steps(self.client_sizes[[job.client for job in jobs]])
        pending = deque(plan_groups(costs.tolist(), len(self.executors) * GROUPS_PER_EXECUTOR))
        free = deque(self.executors * IN_FLIGHT_PER_EXECUTOR)
        new_models: list[Model] = [[] for _ in jobs]
        new_states: list[dict[str, Model]] = [{} for _ in jobs]
        result_refs: list[tuple[list[int], ray.ObjectRef]] = []
        in_flight: dict[ray.ObjectRef, ActorHandle] = {}
        size, per_job = self.num_entries, self.num_entries * (1 + len(self.writes))
        server_flat = [ref for entries in server.values() for ref in entries]
        server_layout = tuple((name, len(entries)) for name, entries in server.items())
        while pending or in_flight:
            while pending and free:
                group, executor = pending.popleft(), free.popleft()
                layout = CallLayout(size, tuple(tuple(states[i]) for i in group), server_layout, self.writes)
                args = [ref for i in group for ref in [*models[i], *(r for e in states[i].values() for r in e)]]
                refs = executor.train.options(num_returns=len(group) * per_job + 1).remote(
                    [jobs[i] for i in group], layout, *args, *server_flat)
                for k, i in enumerate(group):
                    out = refs[k * per_job:(k + 1) * per_job]
                    new_models[i] = out[:size]
                    new_states[i] = {name: out[size * (n + 1):size * (n + 2)] for n, name in enumerate(self.writes)}
                result_refs.append((group, refs[-1]))
                in_flight[refs[-1]] = executor
            done, _ = ray.wait(list(in_flight), num_returns=1, fetch_local=False)
            for ref in done:
                free.append(in_flight.pop(ref))
        results: list[ClientResult | None] = [None] * len(jobs)
        for (group, _), group_results in zip(result_refs, ray.get([ref for _, ref in result_refs])):
            for i, result in zip(group, group_results):
                results[i] = result
        return new_models, results, new_states

    def combine(self, terms: Sequence[tuple[float, Model]]) -> Model:
        """One call per entry, spread over the executors: each reads one entry of every term."""
        weights = np.array([w for w, _ in terms])
        return [self._executor().combine.remote(weights, *[m[e] for _, m in terms])
                for e in range(len(terms[0][1]))]

    def run(self, fn: Callable, state: Model, inputs: Sequence[Model], kwargs: dict[str, Any]) -> Model:
        refs = self._executor().run.options(num_returns=len(state)).remote(
            fn, kwargs, len(state), [len(i) for i in inputs], *state, *(r for i in inputs for r in i))
        return list(refs) if len(state) > 1 else [refs]

    def call(self, fn: Callable, inputs: Sequence[Model], kwargs: dict[str, Any]) -> Any:
        return ray.get(self._executor().call.remote(fn, kwargs, [len(i) for i in inputs],
                                                    *(r for i in inputs for r in i)))

    def _executor(self) -> ActorHandle:
        self._next = (self._next + 1) % len(self.executors)
        return self.executors[self._next]

    def evaluate(self, model: Model) -> tuple[float, float]:
        return ray.get(self.executors[0].evaluate.remote(*model))

    def fetch(self, model: Model) -> list[np.ndarray]:
        return ray.get(model)
