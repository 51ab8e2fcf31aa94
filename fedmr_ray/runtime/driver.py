"""The driver's side: connect to (or start) a Ray cluster, start the coordinator, tick the rounds."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from contextlib import contextmanager
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fedmr_ray.errors import SettingError
from fedmr_ray.federation import RoundRecord, Snapshot
from fedmr_ray.runtime import entries
from fedmr_ray.runtime.coordinator import Coordinator, fitting_now, plan_executors, start_executors
from fedmr_ray.setup import Setup
from fedmr_ray.signals import keep_sigterm


@contextmanager
def ray_cluster(address: str | None, connect_timeout: float = 60.0, py_modules: Sequence[Path] = ()) -> Iterator[None]:
    """Reuse a Ray already initialised in this process; else connect to `address` (or
    RAY_ADDRESS), else start a local Ray with this machine's CPUs, and stop it afterwards. A
    cluster that does not answer within `connect_timeout` seconds is a ConfigError.
    `py_modules`: local modules (a custom model's) the workers are sent to import.

    Without an address, a new local Ray ("local"), not ray.init's default of joining the cluster
    that `ray start` last started on this machine: that one is named by a file Ray leaves behind
    when such a cluster dies without `ray stop`, and ray.init waited on its dead address forever."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    reachable(address, connect_timeout)
    with keep_sigterm():  # ray.init installs a SIGTERM handler of its own
        ray.init(address=address or "local", include_dashboard=False, logging_level="ERROR", log_to_driver=True,
                 configure_logging=True,
                 runtime_env={"py_modules": [str(path) for path in py_modules]} if py_modules else None)
    try:
        yield
    finally:
        ray.shutdown()


def reachable(address: str | None, timeout: float) -> None:
    """Refuse what this runtime cannot use (Ray Client addresses), and wait up to `timeout` seconds
    for a cluster's head to accept a connection (ray.init itself would wait forever)."""
    if address is None or address in ("auto", "local"):
        return
    if address.startswith("ray://"):
        raise SettingError("runtime.address", "--address", address, "Ray Client (ray://) is not supported: the "
                           "driver must run on the cluster; submit the command with `ray job submit` (as a KubeRay "
                           "RayJob does), or give host:6379 from inside the cluster", quote=False)
    host, _, port = address.removeprefix("http://").rpartition(":")
    if not host or not port.isdigit():
        raise SettingError("runtime.address", "--address", address, "must be host:port of the cluster's head "
                           "(e.g. 10.0.0.5:6379)", quote=False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=max(0.1, min(5.0, deadline - time.monotonic()))).close()
            return
        except OSError:
            if time.monotonic() >= deadline:
                raise SettingError("runtime.address", "--address", address, f"no Ray cluster answered there within "
                                   f"{timeout:g} s (--connect-timeout)", quote=False) from None
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


class RayRun:
    """A simulation on Ray: `describe()` after setup, then `step()` once per round."""

    def __init__(self, setup: Setup):
        resources = ray.cluster_resources()
        runtime = setup.config.runtime
        if runtime.gpus_per_actor > 0 and not resources.get("GPU") and runtime.address is None:
            print(f"fedmr-ray: warning: --gpus-per-actor {runtime.gpus_per_actor:g}: "
                  "the Ray cluster has no GPU; training on CPU", file=sys.stderr)
            runtime = dataclasses.replace(runtime, gpus_per_actor=0.0)
        # refuses what cannot run, before anything starts
        planned = plan_executors(runtime, setup.config.cohort_size, resources)
        # the Setup into the object store once, from this (the head) node, where its objects (the
        # dataset, the copies of the models) stay when workers leave; the coordinator too
        self.setup_ref = ray.put(setup)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # inside a placement group (a sweep's trial), the executors take its bundles
        group = ray.util.get_current_placement_group()
        # the executors that fit now start here, beside the coordinator rather than after it
        first = start_executors(self.setup_ref, runtime, group, 0,
                                min(planned, fitting_now(runtime, ray.available_resources())))
        self.coordinator = Coordinator.options(scheduling_strategy=here).remote([self.setup_ref], runtime, group, first)
        self._pending: ray.ObjectRef | None = None

    def describe(self) -> dict[str, Any]:
        return ray.get(self.coordinator.describe.remote())

    def step(self) -> RoundRecord:
        self._pending = self.coordinator.step.remote()
        record = ray.get(self._pending)
        self._pending = None
        return record

    def complete(self) -> RoundRecord | None:
        """After step() was interrupted: the round that was running finishes; the record of the
        last round completed (which may not have been noted yet)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            ray.get(pending)
        return ray.get(self.coordinator.last_record.remote())

    def snapshot(self) -> Snapshot:
        """The federation's state, its entries fetched here (for a checkpoint)."""
        snap = ray.get(self.coordinator.snapshot.remote())
        return _map_entries(snap, entries.fetch)

    def restore(self, snapshot: Snapshot) -> None:
        ray.get(self.coordinator.restore.remote(_map_entries(snapshot, entries.put)))

    def global_state(self):
        return ray.get(self.coordinator.global_state.remote())

    def server_models(self):
        return ray.get(self.coordinator.server_models.remote())


def _map_entries(snapshot: Snapshot, fn) -> Snapshot:
    """The snapshot with fn applied to each list of entries (references <-> arrays)."""
    return Snapshot(snapshot.round, [fn(model) for model in snapshot.models],
                    {name: fn(entries) for name, entries in snapshot.server.items()},
                    {client: {name: fn(entries) for name, entries in state.items()}
                     for client, state in snapshot.clients.items()})
