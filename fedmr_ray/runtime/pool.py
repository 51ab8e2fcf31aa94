"""The executor pool: the Ray backend of the round loop. A model is a list of entries, each a
reference into the object store (runtime/entries.py); the pool hands references to executors and
gets references back, and never reads model bytes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import ray
import ray.experimental
from ray.actor import ActorHandle

from fedmr_ray.algorithms.base import SUM_CHUNK
from fedmr_ray.config import TrainConfig
from fedmr_ray.runtime import entries as store
from fedmr_ray.runtime.entries import CallLayout, Entry, alone_by_size, as_args, locate, returns, unbundle
from fedmr_ray.train import ClientResult, TrainJob

Model = list[Entry]

# Calls queued per executor: the next group is already waiting when one finishes.
IN_FLIGHT_PER_EXECUTOR = 2
# Groups per executor and round where executors train many clients at once (vectorised): few,
# so that the lanes stay full, and more than one, so that an executor that finishes early takes
# another.
GROUPS_PER_EXECUTOR = 2
# Elsewhere groups shrink as the round goes on (plan_shrinking), down to this many seconds of
# expected training: below it a call's own cost (its arguments, its results' objects) weighs.
SMALLEST_CALL_S = 0.05
# At most this many clients a call: its models and results are held at once, and a call that
# fails is trained again whole.
MAX_CLIENTS_PER_CALL = 64


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


def plan_shrinking(costs: Sequence[float], executors: int, smallest: float, largest: int) -> list[list[int]]:
    """The cohort's positions in groups to hand out in this order, each to the first executor
    with a free slot, the costliest clients first; each group about half of what is left per
    executor (guided self-scheduling), of at least `smallest` cost (but the last) and at most
    `largest` clients. Early groups are large, the last ones small: an executor that runs
    slower than expected (its core shared, a client costlier than timed) gets fewer of them,
    and the executors finish close together however their speeds drift."""
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    left = float(sum(costs))
    groups: list[list[int]] = []
    group, load = [], 0.0
    for i in order:
        group.append(i)
        load += costs[i]
        if load >= max(left / (2 * executors), smallest) or len(group) == largest:
            groups.append(group)
            left -= load
            group, load = [], 0.0
    return groups + [group] if group else groups


# What a call fails with when its executor is gone (killed, out of memory, its node removed):
# the call is retried on another executor. Anything else (a bug in training) is not hidden.
EXECUTOR_LOST = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)


class TrainCalls:
    """One round's train calls: what each sends (entries.CallLayout) and where its outputs go.
    A call's outputs are known as references when it is submitted; its results (losses, sample
    counts) when it finishes. A group that is submitted again overwrites its earlier outputs."""

    def __init__(self, jobs: Sequence[TrainJob], models: Sequence[Model], states: Sequence[dict[str, Model]],
                 server: dict[str, Model], entries: int, alone: tuple[bool, ...], writes: tuple[str, ...]):
        self.jobs, self.sent_models, self.sent_states = jobs, models, states
        self.entries, self.writes = entries, writes
        self.alone = alone * (1 + len(writes))  # a job's outputs: its model, then its states
        self.server_flat = [e for entries in server.values() for e in entries]
        self.server_layout = tuple((name, len(entries)) for name, entries in server.items())
        self.models: list[Model] = [[] for _ in jobs]
        self.states: list[dict[str, Model]] = [{} for _ in jobs]
        self.results: list[ClientResult | None] = [None] * len(jobs)

    def submit(self, executor: ActorHandle, group: list[int]) -> ray.ObjectRef:
        """The group's call on this executor; the reference its results will come back by."""
        size = self.entries
        index, model_entries = CallLayout.pack([self.sent_models[i] for i in group])
        layout = CallLayout(size, index, tuple(tuple(self.sent_states[i]) for i in group), self.server_layout,
                            self.writes)
        args = as_args(model_entries + [e for i in group for entries in self.sent_states[i].values() for e in entries]
                       + self.server_flat)
        refs = executor.train.options(num_returns=returns(self.alone * len(group)) + 1).remote(
            [self.jobs[i] for i in group], layout, self.alone, *args)
        out = unbundle(refs[:-1], self.alone * len(group))
        per_job = len(self.alone)
        for k, i in enumerate(group):
            mine = out[k * per_job:(k + 1) * per_job]
            self.models[i] = mine[:size]
            self.states[i] = {name: mine[size * (n + 1):size * (n + 2)] for n, name in enumerate(self.writes)}
        return refs[-1]

    def collect(self, group: list[int], results: list[ClientResult]) -> None:
        for i, result in zip(group, results):
            self.results[i] = result

    def objects(self) -> list[ray.ObjectRef]:
        """The distinct objects holding the new entries."""
        produced = [e for model in self.models for e in model]
        produced += [e for state in self.states for entries in state.values() for e in entries]
        return locate(produced)[1]


class ExecutorPool:
    """The Ray backend of the round loop (federation.Backend), and the executors' keeper.

    The pool follows the cluster: at every round's start, executors whose start has finished
    join, and new ones are started until there are `target()` of them (pending ones make the
    autoscaler add nodes). A call whose executor dies is given to another executor; the dead one
    leaves the pool, and a replacement starts at the next round where the cluster has room.
    """

    def __init__(self, start_executor: Callable[[], ActorHandle], target: Callable[[], int], nbytes: Sequence[int],
                 client_sizes: np.ndarray, train: TrainConfig, writes: tuple[str, ...] = (),
                 started: Sequence[ActorHandle] = ()):
        """`started`: executors already starting (the driver's), which join as the others do."""
        self.start_executor, self.target = start_executor, target
        self.ready: list[ActorHandle] = []
        # describe() call -> executor being placed
        self.joining: dict[ray.ObjectRef, ActorHandle] = {executor.describe.remote(): executor for executor in started}
        # (device, vectorised, step cost) of every executor that joined (Executor.describe)
        self.described: list[tuple[str, bool, tuple[float, float] | None]] = []
        self.nbytes = tuple(nbytes)  # per entry of a model, its bytes
        self.num_entries = len(self.nbytes)
        self.alone = alone_by_size(self.nbytes)  # per entry: whether it is an object of its own (entries.py)
        self.client_sizes = client_sizes
        self.train_config = train
        self.writes = writes  # the client states the algorithm's local rule writes
        self.workers = 0  # executors that trained in the last round
        self.produced: list[ray.ObjectRef] = []  # the objects the last round's training returned
        self._next = 0

    def refresh(self, wait_for: int = 1) -> None:
        """Executors placed since the last call join; new ones start up to the target; returns
        once at least `wait_for` executors are ready (waiting for the cluster if need be)."""
        while len(self.ready) + len(self.joining) < max(self.target(), wait_for):
            executor = self.start_executor()
            self.joining[executor.describe.remote()] = executor
        while self.joining:
            must_wait = len(self.ready) < wait_for
            done, _ = ray.wait(list(self.joining), num_returns=1, timeout=None if must_wait else 0)
            if not done:
                return
            executor = self.joining.pop(done[0])
            try:
                self.described.append(ray.get(done[0]))
                self.ready.append(executor)
            except EXECUTOR_LOST:
                if len(self.ready) + len(self.joining) < max(self.target(), wait_for):
                    replacement = self.start_executor()
                    self.joining[replacement.describe.remote()] = replacement

    def put(self, entries: list[np.ndarray]) -> Model:
        return store.put(entries)

    def train(self, jobs: Sequence[TrainJob], models: Sequence[Model], states: Sequence[dict[str, Model]],
              server: dict[str, Model]) -> tuple[list[Model], list[ClientResult], list[dict[str, Model]]]:
        """Plan the round's groups of clients, hand them out and collect them; the new entries
        then kept on this (the head) node too."""
        self.refresh()
        calls = TrainCalls(jobs, models, states, server, self.num_entries, self.alone, self.writes)
        self.dispatch(self.plan(jobs), calls)
        self.produced = calls.objects()
        # a copy of every new object on this node: where the executor that made one leaves with
        # its node, the object is found here rather than lost
        ray.wait(self.produced, num_returns=len(self.produced), fetch_local=True)
        return calls.models, calls.results, calls.states

    def plan(self, jobs: Sequence[TrainJob]) -> list[list[int]]:
        """The cohort's positions in groups, one executor call each, the costliest clients first:
        groups that shrink as the round goes on where costs are timed in seconds, else a few
        equal ones per executor (vectorised executors keep their lanes full)."""
        costs = self.costs(np.array([job.client for job in jobs])).tolist()
        if self.step_cost() is not None:
            return plan_shrinking(costs, len(self.ready), SMALLEST_CALL_S, MAX_CLIENTS_PER_CALL)
        return plan_groups(costs, max(len(self.ready) * GROUPS_PER_EXECUTOR, -(-len(jobs) // MAX_CLIENTS_PER_CALL)))

    def dispatch(self, groups: list[list[int]], calls: TrainCalls) -> None:
        """Each group to the first executor with a free slot, until every group has trained: the
        round ends when the slowest executor does, so balance matters more than order. A group
        whose executor dies trains again elsewhere; the dead executor leaves the pool."""
        pending = deque(groups)
        free = deque(self.ready * IN_FLIGHT_PER_EXECUTOR)
        in_flight: dict[ray.ObjectRef, tuple[ActorHandle, list[int]]] = {}
        used: set[ActorHandle] = set()
        while pending or in_flight:
            if pending and not free and not in_flight:  # every executor is gone: wait for new ones
                self.refresh()
                free.extend(self.ready * IN_FLIGHT_PER_EXECUTOR)
            while pending and free:
                group, executor = pending.popleft(), free.popleft()
                in_flight[calls.submit(executor, group)] = (executor, group)
            done, _ = ray.wait(list(in_flight), num_returns=1, fetch_local=False)
            executor, group = in_flight.pop(done[0])
            try:
                calls.collect(group, ray.get(done[0]))
            except EXECUTOR_LOST:
                # the group's clients train again elsewhere; the lost call's outputs are dropped
                pending.appendleft(group)
                if executor in self.ready:
                    self.ready.remove(executor)
                free = deque(e for e in free if e is not executor)
                continue
            used.add(executor)
            free.append(executor)
        self.workers = len(used)

    def costs(self, clients: np.ndarray) -> np.ndarray:
        """The clients' expected training times, to balance groups by: their local steps times a
        step's fixed cost, plus their samples times a sample's, as the executors timed them
        (medians); where executors train several clients at once, steps alone (every step a
        full batch, padded). Steps alone misjudged the cnn's clients with a short last batch
        (a fit over 150 clients here: 1.1 ms a step + 0.06 ms a sample; the two executors then
        finished a 5-epoch round a median 80 ms apart)."""
        sizes = self.client_sizes[clients]
        steps = self.train_config.local_steps(sizes)
        timed = self.step_cost()
        if timed is None:
            return steps.astype(np.float64)
        fixed, per_sample = timed
        return steps * fixed + self.train_config.local_epochs * sizes * per_sample

    def step_cost(self) -> tuple[float, float] | None:
        """(seconds fixed, seconds per sample) of a local step, medians of what the executors
        that train one client at a time timed; None where they vectorise."""
        timed = [cost for _, vectorised, cost in self.described if not vectorised]
        if not timed:
            return None
        fixed, per_sample = (float(np.median(column)) for column in zip(*timed))
        return fixed, per_sample

    def combine(self, terms: Sequence[tuple[float, Model]]) -> Model:
        """Entry by entry, spread over the executors: with up to SUM_CHUNK terms, one call per
        executor, each summing a share of the entries, the shares of about equal bytes (the next
        round waits for the slowest); with more, a few calls at a time, each a chunk's partial sum
        of one entry, then their sums."""
        weights = np.array([w for w, _ in terms])
        models = [m for _, m in terms]
        entries = range(len(models[0]))
        spans = [(a, min(a + SUM_CHUNK, len(models))) for a in range(0, len(models), SUM_CHUNK)]
        if len(spans) == 1:  # one call per executor, each summing its share of the entries
            ways = min(max(len(self.ready), 1), len(entries))  # no executor ready: _bounded waits for one
            # a model's entries by their bytes; other states' (fewer entries: parameters only) alike
            sizes = self.nbytes if len(entries) == self.num_entries else [1] * len(entries)
            shares = plan_groups(list(sizes), ways)
            done = self._bounded([lambda ex, share=share: ex.combine.options(num_returns=2).remote(
                weights, *as_args([m[e] for e in share for m in models])) for share in shares])
            out: list = [None] * len(entries)
            for share, (refs, _) in zip(shares, done):
                for e, entry in zip(share, unbundle(refs, [False] * len(share))):
                    out[e] = entry
            return out
        partials = self._bounded([lambda ex, e=e, a=a, b=b: ex.partial.options(num_returns=2).remote(
            weights[a:b], *as_args([m[e] for m in models[a:b]])) for e in entries for a, b in spans])
        per_entry = [partials[e * len(spans):(e + 1) * len(spans)] for e in entries]
        done = self._bounded([lambda ex, parts=parts: ex.finish.options(num_returns=2).remote(
            parts[0][1], *[refs[0] for refs, _ in parts]) for parts in per_entry])
        return [refs[0] for refs, _ in done]

    def run(self, fn: Callable, state: Model, inputs: Sequence[Model], kwargs: dict[str, Any]) -> Model:
        lengths, flat = [len(i) for i in inputs], [e for i in inputs for e in i]
        return self._settle(self._checked(lambda ex: ex.run.options(num_returns=len(state) + 1).remote(
            fn, kwargs, len(state), lengths, *as_args([*state, *flat]))))[0]

    def call(self, fn: Callable, inputs: Sequence[Model], kwargs: dict[str, Any]) -> Any:
        lengths, flat = [len(i) for i in inputs], [e for i in inputs for e in i]
        return ray.get(self._settle(self._checked(
            lambda ex: ex.call.options(num_returns=2).remote(fn, kwargs, lengths, *as_args(flat))))[0][0])

    def evaluate(self, model: Model) -> tuple[float, float]:
        return ray.get(self._settle(self._checked(
            lambda ex: ex.evaluate.options(num_returns=2).remote(*as_args(model))))[0][0])

    def evaluate_clients(self, model: Model) -> np.ndarray:
        return ray.get(self._settle(self._checked(
            lambda ex: ex.evaluate.options(num_returns=2).remote(*as_args(model), per_client=True)))[0][0])

    def _bounded(self, submits: Sequence[Callable[[ActorHandle], list[ray.ObjectRef]]]
                 ) -> list[tuple[list[ray.ObjectRef], Any]]:
        """Run the calls, at most IN_FLIGHT_PER_EXECUTOR per executor at once; each one's result
        refs and marker value, in order."""
        out: list = [None] * len(submits)
        pending, in_flight = deque(enumerate(submits)), {}
        while pending or in_flight:
            while pending and len(in_flight) < IN_FLIGHT_PER_EXECUTOR * max(len(self.ready), 1):
                i, submit = pending.popleft()
                call = self._checked(submit)
                in_flight[call[1][-1]] = (i, call)
            done, _ = ray.wait(list(in_flight), num_returns=1)
            i, call = in_flight.pop(done[0])
            out[i] = self._settle(call)
        return out

    def _checked(self, submit: Callable[[ActorHandle], list[ray.ObjectRef]]):
        """A call on the next executor whose refs end with a small marker, and how to redo it."""
        if not self.ready:
            self.refresh()
        self._next = (self._next + 1) % len(self.ready)
        executor = self.ready[self._next]
        return executor, submit(executor), submit

    def _settle(self, call) -> tuple[list[ray.ObjectRef], Any]:
        """The call's result refs and marker value once it ran, redone elsewhere while executors die."""
        executor, refs, submit = call
        while True:
            try:
                return list(refs[:-1]), ray.get(refs[-1])
            except EXECUTOR_LOST:
                if executor in self.ready:
                    self.ready.remove(executor)
                executor, refs, submit = self._checked(submit)

    def fetch(self, model: Model) -> list[np.ndarray]:
        return store.fetch(model)


def traffic(refs: Sequence[ray.ObjectRef]) -> dict[str, int]:
    """Where these objects live: Ray returns a small object inline to its owner (this process),
    whose bytes thus pass through it; a large one stays in the object store of its node."""
    locations = ray.experimental.get_object_locations(list(refs))
    inline = [loc["object_size"] for loc in locations.values() if not loc["node_ids"]]
    stored = [loc["object_size"] for loc in locations.values() if loc["node_ids"]]
    return {"inline_objects": len(inline), "inline_bytes": int(sum(inline)), "largest_inline": int(max(inline, default=0)),
            "stored_objects": len(stored), "stored_bytes": int(sum(stored))}
