"""The coordinator actor: it owns the dataset and the models' refs and runs the rounds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import ray

from fedmr_ray.config import ConfigError, RuntimeConfig, SimulationConfig
from fedmr_ray.data import load_dataset
from fedmr_ray.federation import Federation, RoundRecord, build_algorithm, run_summary
from fedmr_ray.models import ModelSpec, entry_names
from fedmr_ray.runtime.executor import Executor
from fedmr_ray.runtime.pool import ExecutorPool


def plan_executors(runtime: RuntimeConfig, cohort_size: int, resources: dict[str, float]) -> int:
    """As many executors as the cluster's resources hold, at most one per client of a cohort."""
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
    if fit < 1:
        raise ConfigError(
            f"--cpus-per-actor {runtime.cpus_per_actor:g} / --gpus-per-actor {runtime.gpus_per_actor:g}: "
            f"more than this cluster has ({cpus:g} CPUs, {gpus:g} GPUs)")
    return min(fit, cohort_size)


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, config: dict[str, Any], num_executors: int):
        cfg = SimulationConfig.from_dict(config)
        data = load_dataset(cfg)
        spec = ModelSpec(cfg.model, data.num_classes, data.input_shape)
        algorithm = build_algorithm(cfg, spec, data)
        data_ref = ray.put(data)
        rt = cfg.runtime
        # An executor holds nothing a call cannot rebuild, and a call gives the same result on any
        # executor: one that dies is restarted and its calls are retried (faults are retried, not hidden).
        executors = [
            Executor.options(num_cpus=rt.cpus_per_actor, num_gpus=rt.gpus_per_actor,
                             max_restarts=-1, max_task_retries=-1).remote(
                spec, data_ref, cfg.train, cfg.seed, max(1, int(rt.cpus_per_actor)), rt.gpus_per_actor > 0,
                algorithm.local)
            for _ in range(num_executors)
        ]
        described = ray.get([e.describe.remote() for e in executors])
        self.devices = [device for device, _ in described]
        writes = algorithm.local.client_state if algorithm.local else ()
        pool = ExecutorPool(executors, len(entry_names(spec)), data.client_sizes(), cfg.train, writes)
        self.federation = Federation(cfg, spec, data, algorithm, pool)
        self.summary = run_summary(data, self.federation, self.devices,
                                   vectorised=all(vectorised for _, vectorised in described))

    def describe(self) -> dict[str, Any]:
        return self.summary

    def step(self) -> RoundRecord:
        return self.federation.step()

    def global_state(self) -> dict[str, np.ndarray]:
        return self.federation.global_state()
