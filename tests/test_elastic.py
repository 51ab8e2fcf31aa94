"""The executor pool follows the cluster: several Ray nodes on this machine (ray.cluster_utils),
nodes added and removed while a simulation runs."""

import time

import pytest
import ray
from ray.cluster_utils import Cluster

from fedmr_ray import SimulationConfig, TrainConfig, simulate
from runs import results

NODE = {"num_cpus": 1, "object_store_memory": 150 * 1024**2}
# rounds of about a second, so that a node added during one is up before the run ends
CONFIG = SimulationConfig(clients=40, fraction=0.25, rounds=6, eval_every=1, seed=3,
                          train=TrainConfig(local_epochs=3, batch_size=20))


@pytest.fixture
def cluster():
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def alive_executors() -> list:
    from ray._private.state import actors

    return [a for a in actors(actor_state_name="ALIVE").values() if a["ActorClassName"] == "Executor"]


def test_a_node_added_mid_run_brings_more_executors_and_the_numbers_do_not_change(cluster):
    undisturbed = simulate(CONFIG)
    assert {row["executors"] for row in undisturbed} == {1}

    def add_a_node(record, elapsed):
        if record.round == 1:
            cluster.add_node(**NODE)
            return
        # the executor started on it up (its actor alive: however loaded the machine), then time
        # for its start-up checks before the next round
        deadline = time.monotonic() + 120
        while len(alive_executors()) < 2:
            assert time.monotonic() < deadline, "no executor came up on the new node"
            time.sleep(0.2)
        time.sleep(1.5)

    grown = simulate(CONFIG, on_round=add_a_node)
    executors = [row["executors"] for row in grown]
    assert executors[0] == 1 and executors[-1] == 2, executors
    assert results(grown) == results(undisturbed)


def test_a_node_removed_mid_run_and_the_run_finishes_with_the_same_numbers(cluster):
    worker = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    undisturbed = simulate(CONFIG)
    assert undisturbed[0]["executors"] == 2

    def remove_the_node(record, elapsed):
        if record.round == 2:
            cluster.remove_node(worker, allow_graceful=False)
            deadline = time.monotonic() + 60  # until the cluster knows the node is gone
            while any(n["NodeID"] == worker.node_id and n["Alive"] for n in ray.nodes()):
                assert time.monotonic() < deadline, "the removed node is still alive"
                time.sleep(0.2)

    shrunk = simulate(CONFIG, on_round=remove_the_node)
    executors = [row["executors"] for row in shrunk]
    assert executors[:2] == [2, 2] and executors[-1] == 1, executors
    assert results(shrunk) == results(undisturbed)
