import numpy as np

from fedmr_ray.algorithms import FedAvg, FedMR, make_algorithm, weighted_mean
from fedmr_ray.config import AlgorithmConfig


def test_fedmr_averages_before_the_first_stage_bound_and_recombines_from_it():
    algorithm = FedMR(groups=np.arange(4), first_stage_bound=3)
    sizes = np.array([10.0, 30.0, 60.0])
    rng = np.random.default_rng(0)
    for round_index in range(3):
        step = algorithm.server_step(round_index, sizes, rng)
        assert step.perms is None and step.copies == 3
        assert np.allclose(step.weights, 1 / 3)  # unweighted, as the reference's Aggregation(w, None)
    step = algorithm.server_step(3, sizes, rng)
    assert step.weights is None and step.perms.shape == (4, 3)
    assert algorithm.num_server_models(3) == 3
    assert np.allclose(algorithm.global_weights(sizes), 1 / 3)


def test_fedavg_weights_by_data_size_and_keeps_one_model():
    algorithm = FedAvg()
    step = algorithm.server_step(0, np.array([10.0, 30.0, 60.0]), np.random.default_rng(0))
    assert step.perms is None and step.copies == 1
    assert np.allclose(step.weights, [0.1, 0.3, 0.6])
    assert algorithm.num_server_models(50) == 1


def test_weighted_mean_on_hand_made_entries():
    entries = [np.array([1.0, 2.0], dtype=np.float32), np.array([3.0, 6.0], dtype=np.float32)]
    mean = weighted_mean(entries, np.array([0.25, 0.75]))
    assert mean.dtype == np.float32 and np.array_equal(mean, [2.5, 5.0])
    counters = [np.array(3, dtype=np.int64), np.array(4, dtype=np.int64)]
    assert weighted_mean(counters, np.array([0.5, 0.5])).dtype == np.int64


def test_make_algorithm_builds_groups_from_the_granularity():
    names = ["a.weight", "a.bias", "b.weight"]
    fedmr = make_algorithm(AlgorithmConfig("fedmr", 5, "layer"), names)
    assert fedmr.first_stage_bound == 5 and fedmr.groups.tolist() == [0, 0, 1]
    assert isinstance(make_algorithm(AlgorithmConfig("fedavg"), names), FedAvg)
