"""FedExP's extrapolation: its norms and step on hand-made entries, its rounds on the serial backend."""

import numpy as np
import torch

from fedmr_ray.algorithms.fedexp import EPSILON, FedExP, server_lr, update_norms
from fedmr_ray.config import AlgorithmConfig, SimulationConfig, TrainConfig
from fedmr_ray.federation import Federation
from fedmr_ray.serial import SerialBackend
from fedmr_ray.setup import prepare
from fedmr_ray.train import ClientTrainer


def test_norms_of_the_updates_over_the_parameter_entries():
    start = [np.array([1.0, 1.0], np.float32), np.array([5.0], np.float32)]  # entry 1: a buffer
    a = [np.array([2.0, 3.0], np.float32), np.array([9.0], np.float32)]  # d = (1, 2)
    b = [np.array([1.0, -1.0], np.float32), np.array([0.0], np.float32)]  # d = (0, -2)
    spread, mean = update_norms([start, a, b], entries=(0,), weights=[0.25, 0.75])
    assert spread == 0.25 * 5 + 0.75 * 4  # sum_i w_i ||d_i||^2
    assert mean == 0.25 ** 2 + (0.25 * 2 - 0.75 * 2) ** 2  # ||(0.25, -1.0)||^2


def test_the_step_is_at_least_fedavgs():
    assert server_lr(np.array([10.0, 1.0]), clients=10) == 0.5 * 10 / (1 + 10 * EPSILON)  # 2.5
    assert server_lr(np.array([1.0, 4.0]), clients=10) == 1.0  # would be 0.1: FedAvg's 1 instead
    step = FedExP(params=(0,)).server_step(0, np.array([1.0, 3.0]), np.random.default_rng(0),
                                           stats=np.array([10.0, 1.0]))
    eta = 0.5 * 10 / (1 + 2 * EPSILON)  # two clients
    assert step.keep == 1 - eta and np.allclose(step.weights, [eta * 0.25, eta * 0.75]) and step.evaluated is None
    later = FedExP(params=(0,)).server_step(3, np.array([1.0, 3.0]), np.random.default_rng(0),
                                            stats=np.array([10.0, 1.0]))
    keep, weights = later.evaluated  # the mean of this round's model and the last
    assert keep == 1 - eta / 2 and np.allclose(weights, [eta / 2 * 0.25, eta / 2 * 0.75])


class RecordingBackend(SerialBackend):
    def train(self, jobs, models, states, server):
        self.trained, results, after = super().train(jobs, models, states, server)
        return self.trained, results, after


def test_rounds_extrapolate_along_the_mean_update_and_evaluate_the_mean_of_the_last_two():
    torch.set_num_threads(1)
    setup = prepare(SimulationConfig(clients=20, fraction=0.25, rounds=3, eval_every=1,
                                     train=TrainConfig(local_epochs=5, lr=0.1), algorithm=AlgorithmConfig("fedexp")))
    config = setup.config
    backend = RecordingBackend(ClientTrainer(setup.spec, setup.data, config.train, config.seed))
    federation = Federation(setup, backend)
    params = setup.info.param_entries
    etas = []
    for r in range(3):
        start = [e.astype(np.float64) for e in federation.models[0]]
        federation.step()
        sizes = np.array([res.num_samples for res in federation.last_record.clients], dtype=np.float64)
        w = sizes / sizes.sum()
        deltas = [[t[e].astype(np.float64) - start[e] for e in range(len(start))] for t in backend.trained]
        spread = sum(wi * sum(float(np.sum(d[e] ** 2)) for e in params) for wi, d in zip(w, deltas))
        mean = [sum(wi * d[e] for wi, d in zip(w, deltas)) for e in range(len(start))]
        eta = max(1.0, 0.5 * spread / (sum(float(np.sum(mean[e] ** 2)) for e in params) + 0.1 * len(w)))
        etas.append(eta)
        new = [s + eta * m for s, m in zip(start, mean)]
        for entry, expected in zip(federation.models[0], new):
            np.testing.assert_allclose(entry, expected, rtol=1e-5, atol=1e-6)
        evaluated = new if r == 0 else [(a + b) / 2 for a, b in zip(new, start)]
        for entry, expected in zip(federation.global_model, evaluated):
            np.testing.assert_allclose(entry, expected, rtol=1e-5, atol=1e-6)
    assert max(etas) > 1.0  # it extrapolated at least once (else this would test FedAvg)
