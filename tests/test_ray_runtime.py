"""The Ray runtime end to end: a real local Ray, real executors, the real model and data."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from fedmr_ray import AlgorithmConfig, RuntimeConfig, SimulationConfig, TrainConfig, simulate
from fedmr_ray.config import ConfigError
from fedmr_ray.runtime.coordinator import plan_executors
from fedmr_ray.setup import prepare
from runs import client_results, results

# client-by-client evaluation on too: its numbers must agree across backends as well
SMALL = SimulationConfig(clients=30, fraction=0.2, rounds=3, eval_every=1, client_eval_every=2,
                         train=TrainConfig(local_epochs=1))


@pytest.mark.parametrize("algorithm", ["fedmr", "fedavg", "clusamp", "fedmut", "fedexp"])
# clusamp: a sampler and a server task; fedmut: mutations; fedexp: statistics of the models
def test_same_numbers_on_one_or_two_executors_and_without_ray(ray_local, algorithm):
    config = SimulationConfig(**{**SMALL.__dict__, "algorithm": AlgorithmConfig(algorithm)})
    one = simulate(SimulationConfig(**{**config.__dict__, "runtime": RuntimeConfig(num_actors=1)}))
    two = simulate(SimulationConfig(**{**config.__dict__, "runtime": RuntimeConfig(num_actors=2)}))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # this process's threads: a serial run trains with an executor's (one CPU each)
    try:
        serial = simulate(config, serial=True)
        assert torch.get_num_threads() == 2  # given back after the run
    finally:
        torch.set_num_threads(threads)
    assert [row["round"] for row in one] == [1, 2, 3]
    assert results(one) == results(two) == results(serial)
    assert client_results(one.clients) == client_results(two.clients) == client_results(serial.clients)
    assert set(two.clients.column("executor").to_pylist()) <= {"executor-0", "executor-1"}
    stages = {row["stage"] for row in one}
    assert stages == {{"fedmr": "recombine", "fedmut": "mutate"}.get(algorithm, "average")}


def test_plan_executors_follows_resources_and_cohort():
    rt = RuntimeConfig()
    assert plan_executors(rt, cohort_size=100, resources={"CPU": 8.0}) == 8
    assert plan_executors(rt, cohort_size=3, resources={"CPU": 8.0}) == 3
    assert plan_executors(RuntimeConfig(cpus_per_actor=0.5), 100, {"CPU": 2.0}) == 4
    assert plan_executors(RuntimeConfig(gpus_per_actor=0.25), 100, {"CPU": 16.0, "GPU": 1.0}) == 4
    assert plan_executors(RuntimeConfig(num_actors=3), 100, {"CPU": 4.0}) == 3
    with pytest.raises(ConfigError, match="--num-actors 5"):
        plan_executors(RuntimeConfig(num_actors=5), 100, {"CPU": 2.0})
    with pytest.raises(ConfigError, match="--cpus-per-actor 4"):
        plan_executors(RuntimeConfig(cpus_per_actor=4), 100, {"CPU": 2.0})
    # on a cluster reached by address the autoscaler may add nodes: trust the request
    assert plan_executors(RuntimeConfig(num_actors=5, address="ray://head:10001"), 100, {"CPU": 2.0}) == 5


def test_gpu_executors_degrade_to_cpu_where_there_is_no_gpu(ray_local, capfd):
    config = SimulationConfig(**{**SMALL.__dict__, "rounds": 1})
    on_cpu = simulate(config)
    on_gpu = simulate(SimulationConfig(**{**config.__dict__, "runtime": RuntimeConfig(gpus_per_actor=0.5)}))
    if ray_local.cluster_resources().get("GPU"):
        pytest.skip("this machine has a GPU")
    assert "has no GPU; training on CPU" in capfd.readouterr().err
    assert results(on_cpu) == results(on_gpu)


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def executor_pids() -> list[int]:
    """The executor processes of the Ray this test process started (its raylet is our descendant)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if not f.read().startswith(b"ray::Executor"):
                    continue
            ancestor = int(entry)
            while ancestor > 1 and ancestor != os.getpid():
                ancestor = parent_pid(ancestor)
        except (OSError, ValueError, IndexError):
            continue
        if ancestor == os.getpid():
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to find the executor processes")
def test_executors_killed_mid_round_are_restarted_and_the_numbers_do_not_change(ray_local):
    # rounds of a few seconds, so a kill 0.3 s into round 2 lands while its clients train
    config = SimulationConfig(clients=30, fraction=0.5, rounds=3, eval_every=1, seed=1,
                              train=TrainConfig(local_epochs=10, batch_size=10),
                              runtime=RuntimeConfig(num_actors=2))
    undisturbed = simulate(config)
    marks: dict[str, float] = {}
    killers: list[threading.Thread] = []

    def kill_executors_during_round_2(record, elapsed):
        marks[f"end {record.round}"] = time.monotonic()
        if record.round == 1:
            pids = executor_pids()
            assert len(pids) >= 2, pids

            def kill():
                time.sleep(0.3)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                marks["kill"] = time.monotonic()

            killers.append(threading.Thread(target=kill))
            killers[0].start()

    disturbed = simulate(config, on_round=kill_executors_during_round_2)
    killers[0].join()
    assert marks["end 1"] < marks["kill"] < marks["end 2"], marks  # the kill fell inside round 2
    assert results(disturbed) == results(undisturbed)


def test_plan_groups_balances_the_cohort_costliest_first():
    from fedmr_ray.runtime.pool import plan_groups

    costs = [400, 5, 5, 30, 10, 10, 120, 10, 5, 5, 60, 10, 300]
    groups = plan_groups(costs, parts=3)
    assert sorted(i for group in groups for i in group) == list(range(len(costs)))
    loads = [sum(costs[i] for i in group) for group in groups]
    assert loads == sorted(loads, reverse=True) and loads[0] == 400  # the 400 alone, the costliest
    assert loads == [400, 300, 270]  # the optimum here
    assert plan_groups([3.0, 1.0], parts=4) == [[0], [1]]  # never an empty group


def test_plan_shrinking_hands_out_large_groups_first_then_ever_smaller_ones():
    from fedmr_ray.runtime.pool import plan_shrinking

    costs = [float(c) for c in np.random.default_rng(3).integers(1, 20, size=100)]
    groups = plan_shrinking(costs, executors=2, smallest=20.0, largest=64)
    assert sorted(i for group in groups for i in group) == list(range(100))  # every client once
    order = [i for group in groups for i in group]
    assert [costs[i] for i in order] == sorted(costs, reverse=True)  # the costliest first
    loads = [sum(costs[i] for i in group) for group in groups]
    total, left = sum(costs), sum(costs)
    for load in loads[:-1]:  # each about half of what is left per executor, none below `smallest`
        assert max(left / 4, 20.0) <= load < max(left / 4, 20.0) + 19
        left -= load
    assert loads[0] >= total / 4 and loads[-2] < total / 16  # large first, small at the end
    capped = plan_shrinking([5.0] * 10, executors=1, smallest=0.0, largest=2)  # half of what is left: 5 clients
    assert [len(g) for g in capped[:3]] == [2, 2, 2] and max(len(g) for g in capped) == 2
    assert plan_shrinking([], executors=2, smallest=1.0, largest=8) == []


def test_an_executor_says_when_each_step_of_its_start_ended(ray_local):
    """The stamps of benchmarks/startup.py, in the order the start goes through."""
    import ray

    from fedmr_ray.runtime.driver import RayRun

    run = RayRun(prepare(SimulationConfig(clients=8, fraction=0.5, rounds=1, runtime=RuntimeConfig(num_actors=2))))
    assert run.describe()["num_executors"] == 2
    stamps = ray.get(run.coordinator.startup.remote())
    coordinator, executors = stamps["coordinator"], stamps["executors"]
    assert coordinator["process"] <= coordinator["init"] <= coordinator["ready"] <= time.time()
    assert len(executors) == 2
    for executor in executors:
        assert executor["process"] <= executor["init"] <= executor["trainer"] <= executor["described"]
        assert executor["described"] <= coordinator["ready"]
    assert run.step().round == 1


def test_clients_are_weighed_by_the_executors_timed_step_cost():
    """Groups are balanced by expected time: steps x a step's fixed cost + samples x a sample's
    (medians of what the executors timed), and by steps alone where executors vectorise."""
    from fedmr_ray.runtime.pool import ExecutorPool

    sizes = np.array([60, 100, 10, 250])
    pool = ExecutorPool(None, None, (8,), sizes, TrainConfig(local_epochs=2, batch_size=50))
    clients = np.array([0, 1, 2, 3])
    steps = np.array([4, 4, 2, 10])
    pool.described = [("cpu", True, None)]  # a vectorising executor times no step
    assert pool.costs(clients).tolist() == steps.tolist()
    pool.described = [("cpu", False, (1e-3, 5e-5)), ("cpu", False, (3e-3, 7e-5)), ("cpu", False, (2e-3, 6e-5))]
    assert np.allclose(pool.costs(clients), steps * 2e-3 + 2 * sizes * 6e-5)
    # 60 samples (a short last batch) cost less than 100, though both take 4 steps
    assert pool.costs(clients)[0] < pool.costs(clients)[1]


def test_step_cost_is_timed_without_changing_the_model():
    from fedmr_ray.train import ClientTrainer, step_cost

    setup = prepare(SimulationConfig(clients=20, model="mlp"))
    trainer = ClientTrainer(setup.spec, setup.data.materialize(), setup.config.train, 0)
    before = [t.clone() for t in trainer.entries]
    fixed, per_sample = step_cost(trainer)
    assert fixed > 0 and per_sample >= 0
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.entries))


def test_means_of_more_models_than_a_chunk_agree_with_the_serial_backend(ray_local):
    from fedmr_ray.algorithms.base import SUM_CHUNK

    config = SimulationConfig(clients=300, fraction=0.5, rounds=2, eval_every=1, train=TrainConfig(local_epochs=1))
    assert config.cohort_size > SUM_CHUNK  # sums of partial sums
    threads = torch.get_num_threads()
    for algorithm in ("fedmr", "fedavg"):
        case = SimulationConfig(**{**config.__dict__, "algorithm": AlgorithmConfig(algorithm)})
        on_ray = simulate(case)
        torch.set_num_threads(1)
        try:
            assert results(on_ray) == results(simulate(case, serial=True))
        finally:
            torch.set_num_threads(threads)
