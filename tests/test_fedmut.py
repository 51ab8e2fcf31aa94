"""FedMut's mutation: its coefficients, and the models it makes, on the serial backend."""

import numpy as np
import pytest
import torch

from fedmr_ray.algorithms.fedmut import FedMut, coefficients
from fedmr_ray.config import AlgorithmConfig, SimulationConfig, TrainConfig
from fedmr_ray.federation import Federation
from fedmr_ray.rng import Stream, generator
from fedmr_ray.serial import SerialBackend
from fedmr_ray.setup import prepare
from fedmr_ray.train import ClientTrainer


@pytest.mark.parametrize("models", [6, 7])
def test_each_entry_pairs_the_models_one_and_rate_minus_one(models):
    c = coefficients(np.random.default_rng(0), models, 50, 0.3)
    assert c.shape == (models, 50)
    for column in c.T:
        values = column[:models // 2 * 2]
        assert sorted(values.tolist()) == [-0.7] * (models // 2) + [1.0] * (models // 2)
    assert (c[-1] == 0).all() == (models % 2 == 1)  # an odd K's last model is the global one
    assert len({tuple(column) for column in c.T}) > 1  # shuffled entry by entry


def test_the_acceleration_rate_falls_to_zero_at_mut_bound():
    algorithm = FedMut(entries=3, radius=2.0, mut_acc_rate=0.4, mut_bound=10)
    sizes = np.ones(4)
    for round_index, rate in ((0, 0.4), (5, 0.2), (10, 0.0), (30, 0.0)):
        step = algorithm.server_step(round_index, sizes, np.random.default_rng(1))
        assert np.allclose(sorted(set(step.mutation.coefficients.ravel().tolist())), [rate - 1, 1.0])
        assert step.mutation.radius == 2.0 and np.allclose(step.weights, 0.25)
    assert np.allclose(algorithm.global_weights(np.array([1.0, 9.0])), 0.5)  # unweighted, as the reference


class RecordingBackend(SerialBackend):
    def train(self, jobs, models, states, server):
        self.started = [list(m) for m in models]
        self.trained, results, after = super().train(jobs, models, states, server)
        return self.trained, results, after


def test_models_are_the_global_model_moved_along_the_last_global_step():
    torch.set_num_threads(1)
    setup = prepare(SimulationConfig(clients=20, fraction=0.25, rounds=3, eval_every=1, train=TrainConfig(local_epochs=1),
                                     algorithm=AlgorithmConfig("fedmut", radius=3.0, mut_bound=2)))
    config = setup.config
    backend = RecordingBackend(ClientTrainer(setup.spec, setup.data, config.train, config.seed))
    federation = Federation(setup, backend)
    k = config.cohort_size
    previous = [e.astype(np.float64) for e in federation.models[0]]  # round 0: the initial model
    for r in range(3):
        record = federation.step()
        assert record.stage == "mutate"
        mean = [np.mean([m[e].astype(np.float64) for m in backend.trained], axis=0).astype(np.float32)
                for e in range(len(previous))]
        step = setup.algorithm.server_step(r, np.ones(k), generator(config.seed, Stream.RECOMBINE, r))
        c = step.mutation.coefficients
        for j, model in enumerate(federation.models):
            for e, entry in enumerate(model):
                g = mean[e].astype(np.float64)
                expected = g + 3.0 * c[j, e] * (g - previous[e])
                np.testing.assert_allclose(entry, expected, rtol=1e-5, atol=1e-6)
        # the global model is the mean (evaluated), kept for the next round's step
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(federation.server_state["global"], mean))
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(federation.global_model, mean))
        previous = [e.astype(np.float64) for e in mean]
        if r == 2:  # from mut_bound on the pairs are +1 and -1: the models' mean is the global model again
            for e in range(len(mean)):
                kept = np.mean([m[e].astype(np.float64) for m in federation.models], axis=0)
                np.testing.assert_allclose(kept, mean[e], rtol=1e-5, atol=1e-6)
    # the next round trains from them, model j on its j-th client
    mutated = [list(m) for m in federation.models]
    federation.step()
    assert all(np.array_equal(a, b) for started, model in zip(backend.started, mutated) for a, b in zip(started, model))
