"""The coordinator actor: it owns the dataset and the models' refs and runs the rounds."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
from ray.actor import ActorHandle
from ray.util.placement_group import PlacementGroup
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from fedmr_ray.config import RuntimeConfig
from fedmr_ray.errors import ConfigError
from fedmr_ray.federation import Federation, RoundRecord, Snapshot, run_summary
from fedmr_ray.runtime.entries import locate
from fedmr_ray.runtime.executor import Executor
from fedmr_ray.runtime.pool import ExecutorPool, traffic
from fedmr_ray.runtime.stamps import process_started


def plan_executors(runtime: RuntimeConfig, cohort_size: int, resources: dict[str, float]) -> int:
    """How many executors the pool aims at, given the cluster's resources: --num-actors if set;
    else --max-actors (at most one per client of a cohort), whether or not they fit now, so that
    the ones that do not make an autoscaler add nodes; else as many as fit, at most one per client."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fit = math.floor(cpus / runtime.cpus_per_actor + 1e-9)
    if runtime.gpus_per_actor > 0:
        fit = min(fit, math.floor(gpus / runtime.gpus_per_actor + 1e-9))
    if runtime.num_actors is not None:
        if runtime.num_actors > fit and runtime.address is None:
            raise ConfigError(
                f"--num-actors {runtime.num_actors}: this cluster ({cpus:g} CPUs, {gpus:g} GPUs) holds at "
                f"most {fit} executors of {runtime.cpus_per_actor:g} CPUs and {runtime.gpus_per_actor:g} GPUs")
        return runtime.num_actors
    if runtime.max_actors is not None:
        return min(runtime.max_actors, cohort_size)
    if fit < 1:
        raise ConfigError(
            f"--cpus-per-actor {runtime.cpus_per_actor:g} / --gpus-per-actor {runtime.gpus_per_actor:g}: "
            f"more than this cluster has ({cpus:g} CPUs, {gpus:g} GPUs)")
    return min(fit, cohort_size)


def fitting_now(runtime: RuntimeConfig, resources: dict[str, float]) -> int:
    """Executors the cluster's free resources hold right now."""
    fit = math.floor(resources.get("CPU", 0.0) / runtime.cpus_per_actor + 1e-9)
    if runtime.gpus_per_actor > 0:
        fit = min(fit, math.floor(resources.get("GPU", 0.0) / runtime.gpus_per_actor + 1e-9))
    return fit


def start_executors(ref: ray.ObjectRef, runtime: RuntimeConfig, group: PlacementGroup | None, first: int,
                    count: int = 1) -> list[ActorHandle]:
    """Start `count` executors, named executor-<first>, executor-<first + 1>, ... An executor holds
    nothing a call cannot rebuild, and a call gives the same result on any executor: the pool
    retries the calls of one that dies on another (max_restarts=0: a dead executor's calls fail at
    once rather than wait for a restart that may never find room in a cluster that shrank)."""
    placed = {"scheduling_strategy": PlacementGroupSchedulingStrategy(group)} if group is not None else {}
    options = Executor.options(num_cpus=runtime.cpus_per_actor, num_gpus=runtime.gpus_per_actor, max_restarts=0,
                               **placed)
    return [options.remote(ref, runtime.threads, runtime.gpus_per_actor > 0, f"executor-{first + i}")
            for i in range(count)]


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, setup_ref: list[ray.ObjectRef], runtime: RuntimeConfig, group: PlacementGroup | None = None,
                 first: Sequence = ()):
        """`setup_ref`: the run's Setup in the object store, in a list so that Ray hands over the
        reference (executors receive the same one) rather than the value; `runtime`: where the
        run executes (the driver may have changed the configuration's, see driver.RayRun);
        `group`: a placement group whose bundles the executors take (a sweep's trial reserves one);
        `first`: executors the driver started (start_executors), which start while this actor's
        own process imports; the pool starts the others."""
        self.stamps = {"process": process_started(), "init": time.time()}  # its imports before `init`
        (ref,) = setup_ref
        setup = ray.get(ref)  # its arrays read in place from the object store
        cfg, rt, local = setup.config, runtime, setup.algorithm.local

        started = itertools.count(len(first))  # executors started: each one's name

        def start_executor():
            return start_executors(ref, rt, group, next(started))[0]

        def target() -> int:
            return plan_executors(rt, cfg.cohort_size, ray.cluster_resources())

        writes = local.client_state if local else ()
        self.pool = ExecutorPool(start_executor, target, setup.info.nbytes, setup.data.client_sizes(), cfg.train, writes,
                                 started=first)
        # wait for the executors that fit: the driver's (which it started for that), else as many as fit now
        self.pool.refresh(wait_for=max(1, len(first) or min(target(), fitting_now(rt, ray.available_resources()))))
        self.stamps["ready"] = time.time()
        self.federation = Federation(setup, self.pool)
        devices = [device for device, _, _ in self.pool.described]
        self.summary = run_summary(setup, devices, vectorised=all(vectorised for _, vectorised, _ in self.pool.described))

    def describe(self) -> dict[str, Any]:
        return self.summary

    def step(self) -> RoundRecord:
        return self.federation.step()

    def startup(self) -> dict[str, Any]:
        """When its process and its ready executors' started, and each step of their start ended,
        on the wall clock (benchmarks/startup.py)."""
        return {"coordinator": self.stamps, "executors": ray.get([e.startup.remote() for e in self.pool.ready])}

    def last_record(self) -> RoundRecord | None:
        return self.federation.last_record

    def traffic(self) -> dict[str, dict[str, int]]:
        """Of the objects the last round's training returned ("trained"), and of those holding the
        server's models and state after its server step ("kept": recombined, averaged, or mutated
        entries): those whose bytes passed through this process (returned inline) and those left
        in the object store (benchmarks)."""
        fed = self.federation
        kept = [e for model in fed.models for e in model] + [e for s in fed.server_state.values() for e in s]
        return {"trained": traffic(self.pool.produced), "kept": traffic(locate(kept)[1])}

    def snapshot(self) -> Snapshot:
        return self.federation.snapshot()

    def restore(self, snapshot: Snapshot) -> None:
        """From a snapshot whose entries the driver put."""
        fed = self.federation
        fed.round, fed.models, fed.server_state = snapshot.round, snapshot.models, snapshot.server
        fed.client_state = snapshot.clients

    def global_state(self) -> dict[str, np.ndarray]:
        return self.federation.global_state()

    def server_models(self) -> list[dict[str, np.ndarray]]:
        return self.federation.server_models()
