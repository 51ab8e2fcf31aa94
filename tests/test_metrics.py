"""What a run records: a metrics row every round, a clients row per client of each round, the
communication a deployment would have, and the result object `simulate` returns."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from fedmr_ray import AlgorithmConfig, SimulationConfig, TrainConfig, simulate
from fedmr_ray.federation import sample_cohort
from fedmr_ray.results import CLIENTS_SCHEMA, METRICS_SCHEMA, load_model, read_clients, read_metrics
from fedmr_ray.setup import prepare

BASE = SimulationConfig(clients=20, fraction=0.25, rounds=5, eval_every=2, seed=3, train=TrainConfig(local_epochs=1))


def run(tmp_path, algorithm="fedavg", **changes):
    config = SimulationConfig(**{**BASE.__dict__, "algorithm": AlgorithmConfig(algorithm),
                                 "output": str(tmp_path / algorithm), **changes})
    return simulate(config, serial=True, keep_models=True)


@pytest.fixture(scope="module")
def fedavg(tmp_path_factory):
    return run(tmp_path_factory.mktemp("runs"))


def test_every_round_has_a_row_with_its_clients_and_the_test_columns_only_where_evaluated(fedavg):
    rows = read_metrics(fedavg.run_dir)
    assert rows == fedavg.rows and [row["round"] for row in rows] == [1, 2, 3, 4, 5]
    assert [row["test_accuracy"] is not None for row in rows] == [False, True, False, True, True]
    assert [row["test_loss"] is not None for row in rows] == [False, True, False, True, True]
    assert all(row["clients"] == BASE.cohort_size and row["train_loss"] > 0 for row in rows)
    assert fedavg.metrics.schema == METRICS_SCHEMA and [row["round"] for row in fedavg.evaluated] == [2, 4, 5]
    assert fedavg.final == rows[-1]


def test_clients_parquet_holds_who_trained_what_each_round(fedavg):
    table = read_clients(fedavg.run_dir)
    assert table.schema == CLIENTS_SCHEMA and table.equals(fedavg.clients)
    sizes = prepare(BASE).data.client_sizes()
    rows = table.to_pylist()
    for r in range(BASE.rounds):
        mine = [row for row in rows if row["round"] == r + 1]
        # the sampled clients of every round, in the cohort's order
        assert [row["client_id"] for row in mine] == sample_cohort(BASE.seed, r, BASE.clients, BASE.cohort_size).tolist()
        assert [row["samples"] for row in mine] == [int(sizes[row["client_id"]]) for row in mine]
        assert [row["steps"] for row in mine] == [int(BASE.train.local_steps(row["samples"])) for row in mine]
        assert all(row["executor"] == "serial" and row["train_s"] > 0 for row in mine)
        metrics = fedavg.rows[r]
        assert metrics["samples"] == sum(row["samples"] for row in mine)
        weighted = sum(row["samples"] * row["train_loss"] for row in mine) / metrics["samples"]
        assert metrics["train_loss"] == pytest.approx(weighted, rel=1e-12)


def test_communication_fedmr_sends_what_fedavg_sends_and_scaffold_twice_that(tmp_path, fedavg):
    model_bytes = sum(entry.nbytes for entry in fedavg.server_states[0].values())
    k = BASE.cohort_size
    assert {(row["down_bytes"], row["up_bytes"]) for row in fedavg.rows} == {(k * model_bytes, k * model_bytes)}
    fedmr = run(tmp_path, "fedmr", rounds=2)
    assert {(row["down_bytes"], row["up_bytes"]) for row in fedmr.rows} == {(k * model_bytes, k * model_bytes)}
    scaffold = run(tmp_path, "scaffold", rounds=2)  # a control variate down and its change up, each model-sized
    assert {(row["down_bytes"], row["up_bytes"]) for row in scaffold.rows} == {(2 * k * model_bytes,) * 2}


def test_the_result_holds_the_final_global_model_and_fedmr_its_k_models(tmp_path, fedavg):
    module = fedavg.model()
    assert isinstance(module, torch.nn.Module)
    saved = torch.load(f"{fedavg.run_dir}/model.pt", weights_only=True)
    assert {k: v.tolist() for k, v in module.state_dict().items()} == {k: v.tolist() for k, v in saved.items()}
    assert {k: v.tolist() for k, v in load_model(fedavg.run_dir).state_dict().items()} == \
        {k: v.tolist() for k, v in saved.items()}
    # the module is the model that was evaluated: its test accuracy is the run's final one
    data = prepare(BASE).data
    with torch.no_grad():
        predicted = module(torch.from_numpy(data.x_test)).argmax(1).numpy()
    assert float(np.mean(predicted == data.y_test)) == pytest.approx(fedavg.final["test_accuracy"], abs=1e-12)
    assert len(fedavg.models()) == 1  # FedAvg's K copies of one average
    fedmr = run(tmp_path, "fedmr", rounds=2)
    models = fedmr.models()
    assert len(models) == BASE.cohort_size
    assert len({tuple(m.state_dict()[next(iter(m.state_dict()))].flatten().tolist()) for m in models}) > 1
    assert isinstance(fedmr.metrics, pa.Table) and len(fedmr) == 2 and fedmr[-1] == fedmr.rows[-1]
    with pytest.raises(ValueError, match="keep_models=True"):
        simulate(BASE, serial=True).models()


def test_client_by_client_evaluation_summarises_each_clients_held_out_split(tmp_path):
    from fedmr_ray.data.holdout import client_holdout
    from fedmr_ray.train.evaluate import evaluate_per_client

    fedmr = run(tmp_path, "fedmr", client_eval_every=2)
    columns = ["client_accuracy_mean", "client_accuracy_std", "client_accuracy_worst10", "client_loss_mean",
               "models_client_accuracy_mean", "models_client_accuracy_std", "models_client_accuracy_worst10"]
    assert [all(row[c] is not None for c in columns) for row in fedmr.rows] == [False, True, False, True, True]
    assert all(row[c] is None for row in fedmr.rows[::2][:2] for c in columns)
    # the final round's numbers, recomputed from the saved model on the synthetic clients' own held-out 10%
    data = prepare(BASE).data
    offsets, rows = client_holdout(data, BASE.seed)
    assert offsets[-1] == len(data.y_test) and np.array_equal(rows, np.arange(len(data.y_test)))
    accuracy = evaluate_per_client(fedmr.model(), torch.from_numpy(data.x_test), torch.from_numpy(data.y_test),
                                   offsets)[0]
    final = fedmr.rows[-1]
    assert final["client_accuracy_mean"] == pytest.approx(accuracy.mean(), abs=1e-12)
    assert final["client_accuracy_worst10"] == pytest.approx(np.sort(accuracy)[:2].mean(), abs=1e-12)  # 20 clients
    assert final["client_accuracy_worst10"] <= final["client_accuracy_mean"]
    # the numbers of training do not change
    plain = run(tmp_path / "plain", "fedmr")
    assert [row["test_accuracy"] for row in plain.rows] == [row["test_accuracy"] for row in fedmr.rows]


def test_a_held_out_split_drawn_from_a_common_test_set_follows_the_clients_label_mix():
    from fedmr_ray import DataConfig
    from fedmr_ray.data.holdout import client_holdout

    config = SimulationConfig(**{**BASE.__dict__, "data": DataConfig(partition="dirichlet", alpha=0.2)})
    data = prepare(config).data
    offsets, rows = client_holdout(data, config.seed)
    assert client_holdout(data, config.seed)[1].tolist() == rows.tolist()  # from the seed
    per_sample = len(data.y_test) / data.train_samples
    for client in range(config.clients):
        mine = data.y_test[rows[offsets[client]:offsets[client + 1]]]
        train = data.label_counts(client)
        assert len(mine) == max(1, round(train.sum() * per_sample))
        held = np.bincount(mine, minlength=data.num_classes)
        assert np.all(np.abs(held - train * len(mine) / train.sum()) < 1 + 1e-9)  # its label mix, to a sample


def test_tensorboard_gets_the_numbers_of_metrics_parquet(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = simulate(SimulationConfig(**{**BASE.__dict__, "output": str(tmp_path / "run-a")}), serial=True,
                      tensorboard=tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb" / "run-a"))
    events.Reload()
    for column in ("test_accuracy", "train_loss", "up_bytes", "samples"):
        logged = [(e.step, e.value) for e in events.Scalars(column)]
        expected = [(row["round"], float(np.float32(row[column]))) for row in result.rows if row[column] is not None]
        assert logged == expected, column
    assert len(events.Scalars("train_loss")) == BASE.rounds and len(events.Scalars("test_accuracy")) == 3
