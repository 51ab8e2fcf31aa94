"""The round loop on the serial backend: no Ray, real models and data."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from fedmr_ray.config import AlgorithmConfig, SimulationConfig, TrainConfig
from fedmr_ray.data import make_synthetic
from fedmr_ray.federation import Federation, sample_cohort
from fedmr_ray.models import ModelSpec
from fedmr_ray.serial import SerialBackend
from fedmr_ray.setup import prepare
from fedmr_ray.train import ClientTrainer


class RecordingBackend(SerialBackend):
    """The serial backend, keeping the last round's trained models to compare against."""

    def train(self, jobs, models, states, server):
        self.trained, results, after = super().train(jobs, models, states, server)
        self.jobs = list(jobs)
        return self.trained, results, after


def make_federation(algorithm: AlgorithmConfig, clients=20, fraction=0.25):
    torch.set_num_threads(1)
    setup = prepare(SimulationConfig(clients=clients, fraction=fraction, rounds=3, eval_every=1,
                                     train=TrainConfig(local_epochs=1), algorithm=algorithm))
    config = setup.config
    backend = RecordingBackend(ClientTrainer(setup.spec, setup.data, config.train, config.seed,
                                             local=setup.algorithm.local))
    return Federation(setup, backend), backend, setup.data


def test_stage_one_resets_every_model_to_the_mean_then_stage_two_recombines():
    federation, backend, _ = make_federation(AlgorithmConfig("fedmr", first_stage_bound=1))
    k = federation.config.cohort_size
    assert len(federation.models) == k
    record = federation.step()  # round 0 < bound: stage one
    assert record.stage == "average"
    mean = [np.mean([m[e] for m in backend.trained], axis=0) for e in range(len(federation.names))]
    for model in federation.models:
        assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(model, mean))
    record = federation.step()  # round 1 >= bound: stage two
    assert record.stage == "recombine"
    for e in range(len(federation.names)):
        sources = [next(i for i, t in enumerate(backend.trained) if t[e] is m[e]) for m in federation.models]
        assert sorted(sources) == list(range(k))
    assert record.test_accuracy is not None and 0.0 <= record.test_accuracy <= 1.0


def test_model_j_trains_on_the_j_th_sampled_client():
    federation, backend, _ = make_federation(AlgorithmConfig("fedmr"))
    federation.step()
    expected = sample_cohort(federation.config.seed, 0, 20, federation.config.cohort_size)
    assert [job.client for job in backend.jobs] == expected.tolist()
    assert [job.slot for job in backend.jobs] == list(range(len(expected)))


def test_fedavg_next_model_is_the_size_weighted_mean():
    federation, backend, data = make_federation(AlgorithmConfig("fedavg"))
    federation.step()
    assert len(federation.models) == 1
    sizes = data.client_sizes()[[job.client for job in backend.jobs]].astype(float)
    for e, entry in enumerate(federation.models[0]):
        expected = sum(w * m[e].astype(np.float64) for w, m in zip(sizes / sizes.sum(), backend.trained))
        assert np.allclose(entry, expected, atol=1e-6)


def test_diverse_init_gives_each_model_its_own_initialisation():
    same, _, _ = make_federation(AlgorithmConfig("fedmr"))
    diverse, _, _ = make_federation(AlgorithmConfig("fedmr", diverse_init=True))
    assert all(np.array_equal(a, b) for a, b in zip(same.models[0], same.models[1]))
    assert not np.array_equal(diverse.models[0][0], diverse.models[1][0])


def test_the_same_seed_gives_the_same_rounds():
    first = [make_federation(AlgorithmConfig("fedmr"))[0] for _ in range(2)]
    records = [[replace(f.step(), server_s=0.0) for _ in range(2)] for f in first]  # all but the timing
    assert records[0] == records[1]


def test_sgd_step_matches_torch_sgd_step_for_step():
    from fedmr_ray.train import sgd_step

    torch.manual_seed(0)
    ours, theirs = (torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
                    for _ in range(2))
    theirs.load_state_dict(ours.state_dict())
    for momentum, weight_decay in [(0.5, 0.0), (0.9, 1e-3), (0.0, 0.0)]:
        params = list(ours.parameters())
        buffers = [torch.zeros_like(p) for p in params]
        config = TrainConfig(lr=0.1, momentum=momentum, weight_decay=weight_decay)
        reference = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
        for step in range(5):
            x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
            loss = torch.nn.functional.cross_entropy(ours(x), y)
            sgd_step(params, torch.autograd.grad(loss, params), buffers, config)
            reference.zero_grad()
            torch.nn.functional.cross_entropy(theirs(x), y).backward()
            reference.step()
            for a, b in zip(ours.parameters(), theirs.parameters()):
                assert torch.equal(a, b), (momentum, weight_decay, step)


def test_clients_trained_together_get_the_numbers_of_clients_trained_one_by_one():
    from fedmr_ray.train import TrainJob

    torch.set_num_threads(1)
    data = make_synthetic(12, seed=5)
    spec = ModelSpec("mlp", data.num_classes, data.input_shape)
    config = TrainConfig(local_epochs=2, batch_size=16, client_batch=5, momentum=0.9, weight_decay=1e-3)
    from fedmr_ray.data.synthetic import generated_synthetic

    # the clients made when they train (generated) against the same clients stored (make_synthetic)
    together = ClientTrainer(spec, generated_synthetic(12, seed=5), config, seed=5)
    assert together.vectorised  # exact on this machine: the test below would say if it were not
    one_by_one = ClientTrainer(spec, data, TrainConfig(**{**config.__dict__, "client_batch": 1}), seed=5)
    assert not one_by_one.vectorised
    from fedmr_ray.models import initial_state

    models = [initial_state(spec, 5, index) for index in range(12)]
    jobs = [TrainJob(slot, client, 3) for slot, client in enumerate(range(12))]
    lengths = {len(together.batches(job, data.client_rows(job.client))) for job in jobs}
    assert len(lengths) > 3  # clients of many lengths, short last batches included
    for trained, job, model in zip(together.train_many(jobs, models), jobs, models):
        expected = one_by_one.train(job, model)
        assert trained.result == expected.result
        assert all(np.array_equal(a, b) for a, b in zip(trained.entries, expected.entries))


@pytest.mark.parametrize("variant", ["reference", "paper"])
def test_scaffold_keeps_a_control_variate_per_trained_client_and_moves_the_servers_by_their_change(variant):
    federation, backend, data = make_federation(AlgorithmConfig("scaffold", scaffold_variant=variant), clients=12,
                                                fraction=0.25)
    n = federation.config.clients
    server_before = federation.server_state["control"]
    assert all(not c.any() for c in server_before)
    federation.step()
    cohort = [job.client for job in backend.jobs]
    assert sorted(federation.client_state) == sorted(cohort)  # state only for clients that trained
    new = [federation.client_state[c]["control"] for c in cohort]
    sizes = data.client_sizes().astype(np.float64)
    # the reference's: c + sum_i (n_i / sum(n)) c_i+ and the sample-weighted mean; the paper's: c + sum_i
    # c_i+ / N and the unweighted mean (server_lr 1); c_i was zero before
    weights = sizes[cohort] / sizes.sum() if variant == "reference" else np.full(len(cohort), 1 / n)
    means = sizes[cohort] / sizes[cohort].sum() if variant == "reference" else np.full(len(cohort), 1 / len(cohort))
    for e, server in enumerate(federation.server_state["control"]):
        expected = server_before[e] + sum(w * c[e] for w, c in zip(weights, new))
        assert np.allclose(server, expected, atol=1e-7)
    for e, entry in enumerate(federation.models[0]):
        assert np.allclose(entry, sum(w * m[e] for w, m in zip(means, backend.trained)), atol=1e-6)


@pytest.mark.parametrize("variant", ["reference", "reference-fixed"])
def test_clusamp_reference_keeps_l1_distances_of_the_rounds_updates_and_averages_by_samples(variant):
    federation, backend, data = make_federation(AlgorithmConfig("clusamp", clusamp_variant=variant), clients=12,
                                                fraction=0.25)
    start = federation.models[0]
    federation.step()
    assert federation.client_state == {}  # no client state: the server keeps the matrix
    cohort = [job.client for job in backend.jobs]
    params = federation.info.param_entries
    last = {client: slot for slot, client in enumerate(cohort)}

    def l1(i, j):  # between the two clients' updates, over the parameters, as the reference's get_similarity
        a, b = backend.trained[last[i]], backend.trained[last[j]]
        return sum(np.abs((a[e] - start[e]) - (b[e] - start[e])).sum(dtype=np.float64) for e in params)

    matrix = federation.server_state["similarity"][0]
    pairs = ({(i, j) for i in cohort for j in cohort if i != j} if variant == "reference-fixed"
             else {(i, cohort[-1]) for i in cohort if i != cohort[-1]})
    assert {tuple(int(v) for v in ij) for ij in zip(*np.nonzero(matrix))} == pairs
    assert all(matrix[i, j] == pytest.approx(l1(i, j), rel=1e-5) for i, j in pairs)
    sizes = data.client_sizes()[cohort].astype(np.float64)
    for e, entry in enumerate(federation.models[0]):
        assert np.allclose(entry, sum(w * m[e] for w, m in zip(sizes / sizes.sum(), backend.trained)), atol=1e-6)
    federation.step()  # the next cohort is drawn from the matrix
    assert federation.round == 2


def test_fedindep_never_mixes_models():
    federation, backend, _ = make_federation(AlgorithmConfig("fedindep"))
    for _ in range(2):
        federation.step()
        for model, trained in zip(federation.models, backend.trained):
            assert all(a is b for a, b in zip(model, trained))  # model j stays model j


def test_moon_stores_each_clients_last_model_for_its_next_round():
    federation, backend, _ = make_federation(AlgorithmConfig("moon"), clients=6, fraction=0.5)
    federation.step()
    for job, trained in zip(backend.jobs, backend.trained):
        previous = federation.client_state[job.client]["previous"]
        assert all(np.array_equal(a, b) for a, b in zip(previous, trained))


def test_augmented_training_is_seeded_and_differs_from_plain():
    from fedmr_ray.data import FederatedDataset
    from fedmr_ray.models import initial_state
    from fedmr_ray.train import TrainJob

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 60)
    data = FederatedDataset("images", x, y, x[:10], y[:10], np.array([0, 30, 60]), 10)
    spec = ModelSpec("cnn", 10, (3, 32, 32))
    config = TrainConfig(local_epochs=1, batch_size=10)
    augmented = [ClientTrainer(spec, data, config, seed=1, augment=True) for _ in range(2)]
    plain = ClientTrainer(spec, data, config, seed=1)
    job, start = TrainJob(0, 1, 3), initial_state(spec, 1)
    first, again, without = (t.train(job, start).entries for t in (*augmented, plain))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.allclose(first[0], without[0])
    assert not augmented[0].vectorised
