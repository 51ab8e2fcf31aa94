"""The round loop, written once for every backend and every algorithm.

A model is a list of L entries; so are a client's stored state and the server's. What an entry
is belongs to the backend: numpy arrays in the serial backend (serial.py), references into the
object store in the Ray runtime (runtime/entries.py), where the loop moves references and never
bytes. The algorithm decides what the server does (algorithms/); the loop carries it out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from fedmr_ray.algorithms.base import Mutation
from fedmr_ray.models import initial_state
from fedmr_ray.recombine import recombine
from fedmr_ray.rng import Stream, generator
from fedmr_ray.setup import Setup
from fedmr_ray.signals import held
from fedmr_ray.train import ClientResult, TrainJob

M = TypeVar("M")


class Backend(Protocol[M]):
    def put(self, entries: list[np.ndarray]) -> M: ...

    def train(self, jobs: Sequence[TrainJob], models: Sequence[M], states: Sequence[dict[str, M]],
              server: dict[str, M]) -> tuple[list[M], list[ClientResult], list[dict[str, M]]]:
        """Train models[i] on jobs[i] (with the client's stored state states[i] and the server
        state `server`, for algorithms with a local rule); the new models, the results and the
        clients' new states, in the jobs' order, whatever order they finish in."""

    def combine(self, terms: Sequence[tuple[float, M]]) -> M:
        """Entry by entry, sum of weight x model."""

    def run(self, fn: Callable[..., list[np.ndarray]], state: M, inputs: Sequence[M], kwargs: dict[str, Any]) -> M:
        """fn(state entries, [input entries], **kwargs) -> new state entries, where the data is."""

    def call(self, fn: Callable[..., Any], inputs: Sequence[M], kwargs: dict[str, Any]) -> Any:
        """fn([input entries], **kwargs), where the data is; its (small) result here."""

    def evaluate(self, model: M) -> tuple[float, float]: ...

    def evaluate_clients(self, model: M) -> np.ndarray:
        """[2, clients]: accuracy and loss on each client's held-out split (data.client_holdout)."""

    def fetch(self, model: M) -> list[np.ndarray]: ...

    @property
    def workers(self) -> int:
        """Executors that trained in the last round."""


@dataclass(frozen=True)
class RoundRecord:
    round: int  # rounds completed, 1-based
    stage: str  # "recombine", "average" or "mutate": what the server did after training
    train_loss: float  # local training loss, weighted by the clients' sample counts
    executors: int  # executors that trained in the round
    server_s: float  # seconds the server step took here (recombining refs, or combining models)
    clients: tuple[ClientResult, ...] = ()  # the cohort's results, in the cohort's order
    down_bytes: int = 0  # what a deployment sends the cohort: models and the server state clients read
    up_bytes: int = 0  # what the cohort sends back: models and the client states the server combines
    round_s: float = field(default=0.0, compare=False)  # seconds the round took here, evaluation included
    test_accuracy: float | None = None  # set on evaluated rounds
    test_loss: float | None = None
    client_eval: dict[str, float] | None = None  # on rounds evaluated client by client: client_distribution's


@dataclass(frozen=True)
class Snapshot(Generic[M]):
    """A federation's state after `round` rounds: every random number after it derives from
    (seed, round, client), so this and the configuration are all a run needs to go on."""

    round: int
    models: list[M]
    server: dict[str, M]
    clients: dict[int, dict[str, M]]


def sample_cohort(seed: int, round_index: int, num_clients: int, cohort_size: int) -> np.ndarray:
    return generator(seed, Stream.SAMPLE, round_index).choice(num_clients, cohort_size, replace=False)


class Federation(Generic[M]):
    def __init__(self, setup: Setup, backend: Backend[M]):
        config = self.config = setup.config
        self.info = setup.info
        self.names = list(self.info.names)
        self.client_sizes = setup.data.client_sizes()
        self.algorithm = setup.algorithm
        self.backend = backend
        # one put per distinct initialisation: models that start alike share their entries
        starts = self.algorithm.initialisations(self.algorithm.num_server_models(config.cohort_size))
        initial = {index: backend.put(initial_state(setup.spec, config.seed, index)) for index in dict.fromkeys(starts)}
        self.models = [initial[index] for index in starts]
        self.server_state = {name: backend.put(entries)
                             for name, entries in self.algorithm.initial_server_state().items()}
        self.client_state: dict[int, dict[str, M]] = {}  # only for clients that have trained
        self.round = 0
        self.global_model: M | None = None
        self.last_record: RoundRecord | None = None  # the record of the last round completed
        # communication a deployment would have, per client of a round: its model down, with the
        # server state its local rule reads (SCAFFOLD's control variate, FedGen's generator), and
        # its model up, with each client state the server combines (shaped as the model)
        self.model_bytes = int(sum(self.info.nbytes))
        reads = self.algorithm.local.server_state if self.algorithm.local else ()
        initial_server = self.algorithm.initial_server_state()
        self.down_bytes = self.model_bytes + sum(int(e.nbytes) for name in reads for e in initial_server[name])

    def sample(self, round_index: int) -> np.ndarray:
        cfg = self.config
        sampling = self.algorithm.sampling(round_index, cfg.cohort_size)
        if sampling is None:
            return sample_cohort(cfg.seed, round_index, len(self.client_sizes), cfg.cohort_size)
        if sampling.server:
            return np.asarray(self.backend.call(sampling.fn, [self.server_state[sampling.state]], sampling.kwargs))
        holders = sorted(c for c, state in self.client_state.items() if sampling.state in state)
        states = [self.client_state[c][sampling.state] for c in holders]
        return np.asarray(self.backend.call(sampling.fn, states, {**sampling.kwargs, "clients": holders}))

    def step(self) -> RoundRecord:
        """One round. The federation's state changes only at the end, all at once: a round that
        is interrupted (Ctrl-C, a failure) leaves the state of the round before."""
        cfg, r, rule = self.config, self.round, self.algorithm.local
        round_start = time.perf_counter()
        cohort = self.sample(r)
        jobs = [TrainJob(slot, int(client), r) for slot, client in enumerate(cohort)]
        before = [self.client_state.get(int(client), {}) for client in cohort]
        reads = rule.client_reads if rule else ()
        trained, results, after = self.backend.train(
            jobs, [self.models[j % len(self.models)] for j in range(len(jobs))],
            [{name: state[name] for name in reads if name in state} for state in before],
            {name: self.server_state[name] for name in (rule.server_state if rule else ())})
        sizes = np.array([res.num_samples for res in results], dtype=np.float64)
        train_loss = float(np.dot(sizes, [res.loss for res in results]) / sizes.sum())

        server_start = time.perf_counter()
        rng = generator(cfg.seed, Stream.RECOMBINE, r)
        wanted = self.algorithm.statistics(r, sizes)
        if wanted is None:
            step = self.algorithm.server_step(r, sizes, rng)
        else:
            stats = self.backend.call(wanted.fn, [self.models[0], *trained], wanted.kwargs)
            step = self.algorithm.server_step(r, sizes, rng, stats=stats)
        server_state = dict(self.server_state)
        server_model = None  # the sum of the trained models by step.weights, where the step takes it
        if step.perms is not None:
            models = recombine(trained, step.perms)
        elif step.mutation is not None:
            server_model = self.backend.combine(list(zip(step.weights, trained)))
            models = self._mutate(step.mutation, server_model)
            server_state[step.mutation.state] = server_model
        else:
            start = [(step.keep, self.models[0])] if step.keep else []
            server_model = self.backend.combine(start + list(zip(step.weights, trained)))
            models = [server_model] * step.copies
        for name, update in step.state.items():
            terms = [(update.keep, server_state[name])]
            terms += [(w, state[name]) for w, state in zip(update.after, after)]
            terms += [(w, state[name]) for w, state in zip(update.before, before) if name in state]
            server_state[name] = self.backend.combine(terms)
        task = self.algorithm.server_task(r, cohort)
        if task is not None:
            heads = [[model[e] for e in task.entries] for model in trained]
            server_state[task.state] = self.backend.run(task.fn, server_state[task.state], heads, task.kwargs)
        uploads = 1 + sum(1 for update in step.state.values() if np.any(update.after))
        stage = "recombine" if step.perms is not None else "mutate" if step.mutation is not None else "average"
        record = RoundRecord(r + 1, stage, train_loss,
                             self.backend.workers, time.perf_counter() - server_start, tuple(results),
                             len(jobs) * self.down_bytes, len(jobs) * uploads * self.model_bytes)
        global_model = None
        per_client = cfg.client_eval_every and ((r + 1) % cfg.client_eval_every == 0 or r + 1 == cfg.rounds)
        if (cfg.is_eval_round(r) or per_client) and step.evaluated is not None:
            keep, weights = step.evaluated
            global_model = self.backend.combine([(keep, self.models[0])] + list(zip(weights, trained)))
        elif cfg.is_eval_round(r) or per_client:
            weights = self.algorithm.global_weights(sizes)
            if weights is None or (server_model is not None and not step.keep and np.array_equal(weights, step.weights)):
                global_model = server_model  # the server's model is the global one
            else:
                global_model = self.backend.combine(list(zip(weights, trained)))
        if cfg.is_eval_round(r):
            accuracy, loss = self.backend.evaluate(global_model)
            record = replace(record, test_accuracy=accuracy, test_loss=loss)
        if per_client:
            distinct = list({id(model): model for model in models}.values())  # FedMR's K
            kept = [self.backend.evaluate_clients(model)[0] for model in distinct] if len(distinct) > 1 else []
            record = replace(record, client_eval=client_distribution(self.backend.evaluate_clients(global_model), kept))
        record = replace(record, round_s=time.perf_counter() - round_start)
        # the round is done: the new state, all at once (a signal waits for it: in this process, the
        # serial backend, a Ctrl-C must find the state of one round or of the next, never between)
        with held():
            self.models, self.server_state = models, server_state
            for client, state in zip(cohort, after):
                if state:
                    self.client_state.setdefault(int(client), {}).update(state)
            if global_model is not None:
                self.global_model = global_model
            self.last_record = record
            self.round += 1
        return record

    def _mutate(self, mutation: Mutation, center: M) -> list[M]:
        """The K models of a Mutation around `center`, entry by entry from one combination of
        the center and the previous global model per distinct coefficient."""
        previous = self.server_state.get(mutation.state, self.models[0])
        variants = {}
        for value in np.unique(mutation.coefficients).tolist():
            scale = mutation.radius * value
            variants[value] = center if scale == 0 else self.backend.combine([(1 + scale, center), (-scale, previous)])
        return [[variants[value][e] for e, value in enumerate(row)] for row in mutation.coefficients.tolist()]

    def snapshot(self) -> Snapshot[M]:
        """The state a run continues from: what a checkpoint holds."""
        return Snapshot(self.round, list(self.models), dict(self.server_state),
                        {client: dict(state) for client, state in self.client_state.items()})

    def restore(self, snapshot: Snapshot[list[np.ndarray]]) -> None:
        put = self.backend.put
        self.round = snapshot.round
        self.models = [put(model) for model in snapshot.models]
        self.server_state = {name: put(entries) for name, entries in snapshot.server.items()}
        self.client_state = {client: {name: put(entries) for name, entries in state.items()}
                             for client, state in snapshot.clients.items()}

    def server_models(self) -> list[dict[str, np.ndarray]]:
        """The distinct models the server holds now (FedMR's K; one where the K are copies of an average)."""
        distinct = {id(model): model for model in self.models}.values()
        return [dict(zip(self.names, self.backend.fetch(model), strict=True)) for model in distinct]

    def global_state(self) -> dict[str, np.ndarray]:
        """The last evaluated global model (the last round is always evaluated)."""
        if self.global_model is None:
            raise RuntimeError("no round has been evaluated yet")
        return dict(zip(self.names, self.backend.fetch(self.global_model), strict=True))


def _spread(accuracy: np.ndarray, prefix: str) -> dict[str, float]:
    """Mean, standard deviation and the mean of the worst 10% (at least one) of accuracies."""
    values = np.sort(accuracy[~np.isnan(accuracy)])
    worst = values[:max(1, int(np.ceil(0.1 * len(values))))]
    return {f"{prefix}_mean": float(values.mean()), f"{prefix}_std": float(values.std()),
            f"{prefix}_worst10": float(worst.mean())}


def client_distribution(global_eval: np.ndarray, server_models: Sequence[np.ndarray]) -> dict[str, float]:
    """metrics.parquet's per-client columns: the global model's accuracy over the clients' held-out
    splits (and their mean loss); with several server models (FedMR's K), each model's accuracy on
    each client, over all (model, client) pairs."""
    out = {**_spread(global_eval[0], "client_accuracy"), "client_loss_mean": float(np.nanmean(global_eval[1]))}
    if server_models:
        out.update(_spread(np.concatenate(server_models), "models_client_accuracy"))
    return out


def run_summary(setup: Setup, devices: Sequence[str], vectorised: bool) -> dict:
    """What a run reports once set up; `majority_class` is the test accuracy of always guessing
    the test set's commonest class, the floor any trained model should clear; `vectorised`,
    whether executors train several clients at once (train/lanes.py)."""
    data = setup.data
    return {
        "num_executors": len(devices), "devices": sorted(set(devices)), "vectorised": vectorised,
        "train_samples": data.train_samples, "test_samples": int(len(data.y_test)),
        "entries": [(name, shape) for name, shape in zip(setup.info.names, setup.info.shapes)],
        "majority_class": float(np.bincount(data.y_test).max() / len(data.y_test)),
    }
