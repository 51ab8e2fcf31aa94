"""The algorithms' math on hand-made cases: no Ray, real torch."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedmr_ray.algorithms.base import weighted_sum
from fedmr_ray.algorithms.clusamp import (
    CluSamp,
    UpdateRule,
    clustered_sample,
    cut_tree,
    sampling_distributions,
    similarity_sample,
    update_similarity,
)
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.algorithms.fedgen import SETTINGS, build_generator, train_generator
from fedmr_ray.algorithms.fedmr import FedMR
from fedmr_ray.algorithms.fedprox import ProximalRule
from fedmr_ray.algorithms.moon import ContrastiveRule
from fedmr_ray.algorithms.scaffold import CLIP_NORM, WEIGHT_DECAY, ControlVariateRule, Scaffold
from fedmr_ray.config import AlgorithmConfig, SimulationConfig, TrainConfig
from fedmr_ray.setup import prepare


def test_fedmr_averages_before_the_first_stage_bound_and_recombines_from_it():
    algorithm = FedMR(groups=np.arange(4), first_stage_bound=3)
    sizes = np.array([10.0, 30.0, 60.0])
    rng = np.random.default_rng(0)
    for round_index in range(3):
        step = algorithm.server_step(round_index, sizes, rng)
        assert step.perms is None and step.copies == 3 and step.keep == 0
        assert np.allclose(step.weights, 1 / 3)  # unweighted, as the reference's Aggregation(w, None)
    step = algorithm.server_step(3, sizes, rng)
    assert step.weights is None and step.perms.shape == (4, 3)
    assert algorithm.num_server_models(3) == 3
    assert np.allclose(algorithm.global_weights(sizes), 1 / 3)


def test_fedavg_weights_by_data_size_and_keeps_one_model():
    algorithm = FedAvg()
    step = algorithm.server_step(0, np.array([10.0, 30.0, 60.0]), np.random.default_rng(0))
    assert step.perms is None and step.copies == 1 and step.keep == 0
    assert np.allclose(step.weights, [0.1, 0.3, 0.6])
    assert algorithm.num_server_models(50) == 1
    assert algorithm.global_weights(np.ones(3)) is None  # the global model is the server's model


def test_weighted_sum_on_hand_made_entries():
    entries = [np.array([1.0, 2.0], dtype=np.float32), np.array([3.0, 6.0], dtype=np.float32)]
    total = weighted_sum(entries, np.array([0.25, 0.75]))
    assert total.dtype == np.float32 and np.array_equal(total, [2.5, 5.0])
    assert np.array_equal(weighted_sum(entries, [1.0, -1.0]), [-2.0, -4.0])
    counters = [np.array(3, dtype=np.int64), np.array(4, dtype=np.int64)]
    assert weighted_sum(counters, np.array([0.5, 0.5])).dtype == np.int64


def context(name: str, clients=10, **algorithm):
    return prepare(SimulationConfig(clients=clients, fraction=0.3, algorithm=AlgorithmConfig(name, **algorithm))).algorithm


def test_make_algorithm_builds_each_with_its_settings():
    assert context("fedmr", first_stage_bound=5, granularity="layer").groups.tolist() == [0, 0, 1, 1, 2, 2]
    assert context("fedprox").local.mu == 0.01 and context("fedprox", mu=0.5).local.mu == 0.5
    assert context("moon").local.mu == 5.0 and context("moon").local.temperature == 0.5
    scaffold = context("scaffold", server_lr=0.5)
    assert scaffold.local.param_entries == (0, 1, 2, 3, 4, 5) and scaffold.server_lr == 0.5
    sizes = prepare(SimulationConfig(clients=10, fraction=0.3)).data.client_sizes()
    # the reference's: c / w_i with w_i = n_i / sum(n) x N, no weight decay; the paper's: neither
    assert (scaffold.local.total, scaffold.local.clients, scaffold.local.weight_decay) == (sizes.sum(), 10, 0.0)
    assert scaffold.total_size == sizes.sum()
    paper = context("scaffold", scaffold_variant="paper")
    assert (paper.local.total, paper.local.weight_decay, paper.total_size) == (None, WEIGHT_DECAY, None)
    assert [c.shape for c in scaffold.initial_server_state()["control"]] == [(128, 60), (128,), (64, 128), (64,),
                                                                              (10, 64), (10,)]
    assert context("fedindep").num_server_models(7) == 7


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))


def test_fedprox_gradient_is_cross_entropys_plus_mu_times_the_distance_to_the_global_model():
    model, mu = small_model(), 0.3
    params = list(model.parameters())
    received = [p.detach() + 0.1 * torch.randn_like(p) for p in params]  # the global model, elsewhere
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    ce = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    ours = ProximalRule(mu).grads(SimpleNamespace(params=params, start_params=received), list(ce))
    # the reference's objective: cross-entropy + (mu / 2) ||w - w_global||^2, differentiated by autograd
    prox = sum((mu / 2) * torch.norm(p - g) ** 2 for p, g in zip(params, received))
    reference = torch.autograd.grad(F.cross_entropy(model(x), y) + prox, params)
    for a, b, c, p, g in zip(ours, reference, ce, params, received):
        assert torch.allclose(a, b, atol=1e-6)
        assert torch.allclose(a, c + mu * (p - g), atol=1e-7)


def scaffold_run(params, samples=0):
    server = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 2.0])]
    own = [torch.tensor([0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0])]
    return SimpleNamespace(params=params, start_params=[p.detach() for p in params], scratch={}, samples=samples,
                           server={"control": server}, client={"control": own})


def test_scaffold_paper_corrects_gradients_by_c_minus_c_i_then_clips_and_decays():
    params = [torch.zeros(3, requires_grad=True), torch.ones(2, requires_grad=True)]
    run = scaffold_run(params)
    rule = ControlVariateRule((0, 1), weight_decay=WEIGHT_DECAY)
    rule.start(run)
    grads = rule.grads(run, [torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0])])
    # g + c - c_i = [0.5, 1, 0], [0, 2] has norm < 10: not clipped; then + 1e-5 w
    assert torch.allclose(grads[0], torch.tensor([0.5, 1.0, 0.0]))
    assert torch.allclose(grads[1], torch.tensor([0.0, 2.0]) + WEIGHT_DECAY * torch.ones(2))
    big = rule.grads(run, [torch.tensor([30.0, 0.0, 0.0]), torch.tensor([0.0, 0.0])])
    assert torch.linalg.vector_norm(torch.cat([big[0], big[1] - WEIGHT_DECAY])) == pytest.approx(CLIP_NORM, rel=1e-5)


def test_scaffold_reference_corrects_gradients_by_c_over_w_i_minus_c_i_then_clips():
    params = [torch.zeros(3, requires_grad=True), torch.ones(2, requires_grad=True)]
    # 100 of the 200 samples of 4 clients: w_i = 100 / 200 x 4 = 2, so c / w_i = [0.5, 0, 0], [0, 1]
    run = scaffold_run(params, samples=100)
    rule = ControlVariateRule((0, 1), total=200.0, clients=4)
    rule.start(run)
    assert [c.tolist() for c in run.scratch["correction"]] == [[0.0, 0.0, 0.0], [0.0, 1.0]]
    grads = rule.grads(run, [torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0])])
    assert [g.tolist() for g in grads] == [[0.0, 1.0, 0.0], [0.0, 1.0]]  # no weight decay
    big = rule.grads(run, [torch.tensor([0.0, 0.0, 0.0]), torch.tensor([0.0, 29.0])])  # [0, 30]: clipped to 10
    assert [g.tolist() for g in big] == [[0.0, 0.0, 0.0], [0.0, pytest.approx(10.0, rel=1e-6)]]


def test_scaffold_local_rule_is_the_references_loss_term_clip_and_sgd():
    """One client's local training with the rule against the reference's LocalUpdate_Scaffold
    written out: loss = cross-entropy + sum(params x (c / w_i - c_i)), backward, clip_grad_norm_(10),
    torch.optim.SGD(lr, momentum); then c_i+ = c_i - c + (x - y) / (K lr)."""
    from fedmr_ray.data import make_synthetic
    from fedmr_ray.models import ModelSpec, initial_state
    from fedmr_ray.models.info import model_info
    from fedmr_ray.train import ClientTrainer, TrainJob

    torch.set_num_threads(1)
    data = make_synthetic(6, seed=2)
    spec = ModelSpec("mlp", data.num_classes, data.input_shape)
    info, config = model_info(spec), TrainConfig(local_epochs=2, batch_size=10, lr=0.05, momentum=0.5)
    start = initial_state(spec, 2)
    rng = np.random.default_rng(0)
    server = [(3.0 * rng.normal(size=e.shape)).astype(np.float32) for e in start]  # large: clipping applies
    own = [rng.normal(size=e.shape).astype(np.float32) for e in start]
    sizes = data.client_sizes()
    client = 3
    trainer = ClientTrainer(spec, data, config, seed=2, local=ControlVariateRule(
        tuple(range(len(start))), total=float(sizes.sum()), clients=len(sizes)))
    job = TrainJob(0, client, 1)
    trained = trainer.train(job, start, {"control": own}, {"control": server})

    model = spec.build()
    model.load_state_dict({n: torch.as_tensor(e) for n, e in zip(info.names, start)})
    w_i = sizes[client] / sizes.sum() * len(sizes)
    diff = torch.cat([torch.as_tensor(-c_i + c / w_i).reshape(-1) for c_i, c in zip(own, server)])
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    x_all, y_all = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    batches = trainer.batches(job, data.client_rows(client))
    for rows in batches:
        index = torch.as_tensor(rows)
        loss = F.cross_entropy(model(x_all[index]), y_all[index])
        loss = loss + torch.sum(torch.cat([p.reshape(-1) for p in model.parameters()]) * diff)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10)
        optimizer.step()
    expected = [p.detach().numpy() for p in model.parameters()]
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(trained.entries, expected))
    control = [c_i - c + (x - y) / (len(batches) * config.lr) for c_i, c, x, y in zip(own, server, start, expected)]
    assert all(np.allclose(a, b, atol=1e-3) for a, b in zip(trained.state["control"], control))


def test_scaffold_control_variate_update_is_option_two():
    info = SimpleNamespace(zeros=lambda: [np.zeros(2, np.float32)], names=("w",))
    start = torch.tensor([1.0, 1.0])
    run = SimpleNamespace(params=[torch.tensor([0.8, 1.1])], start_params=[start], scratch={}, steps=4,
                          config=SimpleNamespace(lr=0.05), info=info,
                          server={"control": [torch.tensor([0.2, 0.0])]}, client={"control": [torch.tensor([0.1, 0.3])]})
    # the same in both variants: c_i+ = c_i - c + (x - y) / (K lr) = [0.1 - 0.2 + 0.2 / 0.2, 0.3 - 0 - 0.1 / 0.2]
    for rule in (ControlVariateRule((0,)), ControlVariateRule((0,), total=10.0, clients=2)):
        assert np.allclose(rule.finish(run)["control"][0], [0.9, -0.2])


def test_scaffold_paper_server_step_is_the_mean_update_and_c_plus_the_mean_change():
    step = Scaffold(num_clients=20, server_lr=0.5, initial_control=(), local=None).server_step(
        0, np.array([5.0, 15.0]), np.random.default_rng(0))
    assert step.keep == 0.5 and np.allclose(step.weights, [0.25, 0.25])  # x + 0.5 mean(y_i - x)
    update = step.state["control"]  # c + (1/N) sum(c_i+ - c_i)
    assert update.keep == 1.0 and np.allclose(update.after, 1 / 20) and np.allclose(update.before, -1 / 20)


def test_scaffold_reference_server_step_weighs_models_and_control_variates_by_samples():
    algorithm = Scaffold(num_clients=4, server_lr=1.0, initial_control=(), local=None, total_size=200.0)
    step = algorithm.server_step(0, np.array([50.0, 150.0]), np.random.default_rng(0))
    assert step.keep == 0.0 and step.weights.tolist() == [0.25, 0.75]  # the reference's Aggregation(w, lens)
    # c + (1/N) sum_i w_i (c_i+ - c_i), w_i = n_i / sum(n) x N: n_i / sum(n) over every client's samples
    update = step.state["control"]
    assert update.keep == 1.0 and update.after.tolist() == [0.25, 0.75] and update.before.tolist() == [-0.25, -0.75]
    half = Scaffold(num_clients=4, server_lr=0.5, initial_control=(), local=None, total_size=400.0).server_step(
        0, np.array([50.0, 150.0]), np.random.default_rng(0))
    assert half.keep == 0.5 and half.weights.tolist() == [0.125, 0.375] and half.state["control"].after.tolist() == [
        0.125, 0.375]


def test_moon_loss_is_mu_times_the_contrastive_cross_entropy():
    rule = ContrastiveRule(mu=5.0, temperature=0.5)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[1.0, 1.0], [0.0, 2.0]])  # cos: 1/sqrt(2), 1
    negative = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])  # cos: -1, 0
    models = {"g": positive, "p": negative}
    run = SimpleNamespace(scratch={"anchors": ("g", "p")}, representation_of=lambda model, x: models[model])
    loss = rule.loss(run, torch.zeros(2, 1), None, None, z)
    a = torch.tensor([[2 ** -0.5, -1.0], [1.0, 0.0]]) / 0.5
    expected = 5.0 * torch.mean(-torch.log(torch.exp(a[:, 0]) / torch.exp(a).sum(dim=1)))
    assert torch.allclose(loss, expected)


def test_clustered_sampling_draws_one_client_per_cluster():
    # six clients of equal size in three pairs of near-identical updates; three per round
    base = [np.array([0.0, 0.0]), np.array([10.0, 0.0]), np.array([0.0, 10.0])]
    states = [[base[c // 2] + 0.01 * c] for c in range(6)]
    sizes = np.full(6, 50)
    for round_index in range(20):
        cohort = clustered_sample(states, list(range(6)), sizes=sizes, cohort_size=3, seed=1, round_index=round_index)
        assert sorted(c // 2 for c in cohort) == [0, 1, 2]


def test_sampling_distributions_give_every_client_its_share():
    rng = np.random.default_rng(0)
    weights = np.array([0.1, 0.05, 0.1, 0.08, 0.07, 0.1, 0.1, 0.05, 0.1, 0.05, 0.1, 0.1])
    clusters = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]  # each at most 1/m = 0.25
    rows = sampling_distributions(clusters, weights, 4, rng)
    assert rows.shape == (4, 12) and np.allclose(rows.sum(axis=1), 1.0)
    # over the m draws a client is expected m x its share of the data times: unbiased
    assert np.allclose(rows.sum(axis=0), weights * 4)
    # the m heaviest clusters each open a distribution of their own
    heaviest = sorted(clusters, key=lambda c: weights[c].sum())[-4:]
    for cluster in heaviest:
        assert sum(rows[:, cluster].sum(axis=1) > 0) >= 1


def test_cut_tree_keeps_the_largest_subtrees_under_the_cap():
    # ((0, 1), (2, 3)) with weights 0.1, 0.2, 0.3, 0.4
    merges = np.array([[0, 1, 1.0, 2], [2, 3, 2.0, 2], [4, 5, 3.0, 4]])
    weights = np.array([0.1, 0.2, 0.3, 0.4])
    assert sorted(cut_tree(merges, weights, 0.5)) == [[0, 1], [2], [3]]
    assert sorted(cut_tree(merges, weights, 1.0)) == [[0, 1, 2, 3]]


def test_fedgen_server_training_moves_the_generator_deterministically():
    num_classes, latent = 4, 6
    torch.manual_seed(0)
    state = [t.numpy().copy() for t in build_generator(num_classes, latent).state_dict().values()]
    heads = [[np.random.default_rng(k).normal(size=(num_classes, latent)).astype(np.float32),
              np.zeros(num_classes, np.float32)] for k in range(3)]
    counts = np.array([[5, 0, 1, 0], [0, 7, 0, 3], [2, 2, 2, 2]])
    kwargs = dict(label_counts=counts, num_classes=num_classes, latent=latent, settings=SETTINGS["cifar10"],
                  seed=0, round_index=3)
    first, again = train_generator(state, heads, **kwargs), train_generator(state, heads, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.allclose(first[0], state[0])
    # the heads now classify generated representations better than before training
    labels = torch.arange(num_classes).repeat(32)

    def teacher_loss(entries):
        gen = build_generator(num_classes, latent, entries).eval()
        z = gen(labels, torch.Generator().manual_seed(5))[0]
        return sum(F.cross_entropy(F.linear(z, torch.as_tensor(w), torch.as_tensor(b)), labels) for w, b in heads)

    trained = state
    for round_index in range(5):
        trained = train_generator(trained, heads, **{**kwargs, "round_index": round_index})
    assert teacher_loss(trained) < teacher_loss(state)


def test_a_client_heavier_than_a_draw_spans_several_distributions():
    weights = np.array([0.7, 0.1, 0.1, 0.1])  # m = 3: the first holds 2.1 draws' worth
    rows = sampling_distributions([[0], [1, 2], [3]], weights, 3, np.random.default_rng(0))
    assert np.allclose(rows.sum(axis=1), 1.0) and np.allclose(rows.sum(axis=0), weights * 3)


def test_clusamp_reference_updates_only_the_rounds_clients_against_its_last_one():
    # five clients; the round's cohort 4, 1, 2 trained models of two parameter entries each
    trained = [[np.array([1.0, 2.0], np.float32), np.array([0.5], np.float32)],
               [np.array([0.0, 4.0], np.float32), np.array([-0.5], np.float32)],
               [np.array([3.0, 2.0], np.float32), np.array([0.5], np.float32)]]
    before = np.zeros((5, 5))
    before[2, 4] = 7.0  # from an earlier round
    state = [before]
    cohort = np.array([4, 1, 2])
    slip = update_similarity(state, trained, cohort=cohort, every_pair=False)[0]
    expected = before.copy()
    expected[4, 2] = 2.0 + 0.0 + 0.0  # |1 - 3| + |2 - 2| + |0.5 - 0.5|
    expected[1, 2] = 3.0 + 2.0 + 1.0
    assert np.array_equal(slip, expected)  # [2, 4] kept: the matrix is not symmetric
    assert np.array_equal(state[0], before)  # a new matrix, the state untouched
    fixed = update_similarity(state, trained, cohort=cohort, every_pair=True)[0]
    expected[2, 4], expected[4, 1], expected[1, 4], expected[2, 1] = 2.0, 4.0, 4.0, 6.0
    assert np.array_equal(fixed, expected) and np.array_equal(fixed, fixed.T)
    # a client drawn twice counts with its last update
    twice = update_similarity([np.zeros((5, 5))], trained, cohort=np.array([2, 1, 2]), every_pair=False)[0]
    assert twice[1, 2] == 6.0 and twice[2, 2] == 0.0 and np.count_nonzero(twice) == 1


def test_clusamp_reference_clusters_the_rows_of_its_matrix_as_observations():
    # six clients of equal size whose rows (not symmetric: no distance matrix) come in three pairs
    rows = [np.zeros(6), np.eye(6)[1] * 50, np.eye(6)[4] * 50]
    matrix = np.array([rows[c // 2] + 0.01 * c for c in range(6)])
    for round_index in range(20):
        cohort = similarity_sample([[matrix]], sizes=np.full(6, 50), cohort_size=3, seed=1, round_index=round_index)
        assert sorted(c // 2 for c in cohort) == [0, 1, 2]


def test_clusamp_variants_keep_their_state_and_average_as_said():
    sizes = np.array([10.0, 30.0, 60.0])
    params = (0, 2)
    reference = CluSamp(sizes, 0, "reference", params)
    assert reference.local is None
    assert np.array_equal(reference.initial_server_state()["similarity"][0], np.zeros((3, 3)))
    sampling = reference.sampling(4, 2)
    assert sampling.server and sampling.state == "similarity" and sampling.fn is similarity_sample
    step = reference.server_step(4, np.array([10.0, 30.0]), np.random.default_rng(0))
    assert step.weights.tolist() == [0.25, 0.75]  # the reference's Aggregation(w_locals, lens)
    task = reference.server_task(4, np.array([2, 0]))
    assert task.fn is update_similarity and task.entries == params and task.kwargs["every_pair"] is False
    assert CluSamp(sizes, 0, "reference-fixed", params).server_task(4, np.array([2, 0])).kwargs["every_pair"] is True
    paper = CluSamp(sizes, 0, "paper", params)
    assert isinstance(paper.local, UpdateRule) and paper.initial_server_state() == {}
    assert paper.server_task(4, np.array([2, 0])) is None and not paper.sampling(4, 2).server
    assert paper.server_step(4, np.array([10.0, 30.0]), np.random.default_rng(0)).weights.tolist() == [0.5, 0.5]
    assert context("clusamp").variant == "reference" and context("clusamp").param_entries == (0, 1, 2, 3, 4, 5)
