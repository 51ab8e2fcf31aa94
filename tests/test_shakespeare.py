"""LEAF Shakespeare with the reference's CharLSTM: the lines read as character indices, the writers
as clients, the model, the one-line errors, and a run from the command line on a local Ray."""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pytest
import torch

from datafiles import write_leaf_text
from fedmr_ray import simulate
from fedmr_ray.cli.main import main
from fedmr_ray.config import ConfigError, DataConfig, SimulationConfig
from fedmr_ray.data import load_dataset
from fedmr_ray.data.catalog import SHAKESPEARE_LETTERS, dataset_spec
from fedmr_ray.models import check_model, model_spec
from fedmr_ray.results import read_config, read_metrics
from fedmr_ray.setup import check, prepare
from runs import results

# the reference's utils/language_utils.py ALL_LETTERS
REFERENCE_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"


def config(tmp_path, clients: int = 3, **data) -> SimulationConfig:
    return SimulationConfig(clients=clients, model="lstm", data=DataConfig(
        dataset="shakespeare", data_dir=str(tmp_path / "d"), cache_dir=str(tmp_path / "cache"), **data))


def indices(text: str) -> list[int]:
    """The reference's word_to_indices."""
    return [REFERENCE_LETTERS.find(c) for c in text]


def test_lines_are_character_indices_and_writers_the_clients(tmp_path):
    assert SHAKESPEARE_LETTERS == REFERENCE_LETTERS
    writers = write_leaf_text(tmp_path / "d", {"b_play": 5, "a_play": 3, "c_play": 4},
                              test_writers={"c_play": 2, "a_play": 1, "z_play": 3})
    data = load_dataset(check(config(tmp_path)))
    assert data.num_classes == 80 and data.x_train.shape == (12, 80) and data.x_train.dtype == np.uint8
    for client, writer in enumerate(["a_play", "b_play", "c_play"]):  # sorted, as the reference reads them
        x, y = data.client_samples(client)
        lines, following = writers[writer]
        assert x.tolist() == [indices(line) for line in lines]
        assert y.dtype == np.int64 and y.tolist() == [indices(c)[0] for c in following]
    # the test set: the training writers' test lines (a_play's, c_play's), not z_play's
    assert len(data.y_test) == 3
    assert len(load_dataset(check(config(tmp_path, femnist_test="all"))).y_test) == 6
    assert load_dataset(check(config(tmp_path, clients=1))).client_sizes().tolist() == [3]


def test_the_reference_charlstm():
    spec = model_spec("lstm", dataset_spec("shakespeare"))
    assert check_model("lstm", dataset_spec("shakespeare")) == 819_920  # the reference's CharLSTM's
    torch.manual_seed(0)
    model = spec.build()
    assert list(model.state_dict()) == [
        "embed.weight", *(f"lstm.{kind}_{part}_l{layer}" for layer in (0, 1) for kind in ("weight", "bias")
                          for part in ("ih", "hh")), "out.weight", "out.bias"]
    x = torch.randint(0, 80, (4, 80), dtype=torch.uint8)
    logits = model(x)
    assert logits.shape == (4, 80)
    # the last step's output, through the linear layer: the reference's forward
    h, _ = model.lstm(model.embed(x.long()))
    assert torch.equal(logits, model.out(h[:, -1, :]))


@pytest.mark.parametrize(("model", "dataset", "message"), [
    ("mlp", "shakespeare", "--model mlp: needs numeric inputs, not --dataset shakespeare's character indices; "
                           "models for it: lstm, or package.module:factory"),
    ("lstm", "cifar10", "--model lstm: needs lines of characters (shakespeare), not --dataset cifar10's inputs; "
                        "models for it: mlp, cnn,"),
    ("lstm", "synthetic", "--model lstm: needs lines of characters (shakespeare), not --dataset synthetic's"),
])
def test_models_and_text_datasets_go_together(model, dataset, message):
    with pytest.raises(ConfigError) as err:
        check_model(model, dataset_spec(dataset))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def _edit_first_line(root, edit) -> None:
    import json

    write_leaf_text(root, {"a": 2})
    path = next((root / "train").glob("*.json"))
    record = json.loads(path.read_text())
    lines = record["user_data"]["a"]["x"]
    lines[0] = edit(lines[0])
    path.write_text(json.dumps(record))


def _bad_character(root):
    _edit_first_line(root, lambda line: "\u00e9" + line[1:])


def _short_line(root):
    _edit_first_line(root, lambda line: line[:79])


@pytest.mark.parametrize(("make", "message"), [
    (_bad_character, "user 'a': character '\u00e9' is not one of the 80 of LEAF Shakespeare"),
    (_short_line, "user 'a': x is not a list of 80-character strings"),
])
def test_malformed_text_is_one_line(tmp_path, make, message):
    make(tmp_path / "d")
    with pytest.raises(ConfigError) as err:
        prepare(config(tmp_path, clients=1))
    assert str(err.value).startswith("--dataset shakespeare: ") and message in str(err.value)
    assert "\n" not in str(err.value) and "data/shakespeare/preprocess.sh" in str(err.value)


def test_fedmr_on_shakespeare_from_the_command_line_on_ray(ray_local, tmp_path, monkeypatch, capsys):
    write_leaf_text(tmp_path / "d", {"a": 30, "b": 20, "c": 25}, test_writers={"a": 10, "b": 10, "c": 10})
    out = tmp_path / "run"
    args = ["--dataset", "shakespeare", "--model", "lstm", "--data-dir", str(tmp_path / "d"), "--cache-dir",
            str(tmp_path / "cache"), "--clients", "3", "--fraction", "1", "--rounds", "3", "--eval-every", "1",
            "--local-epochs", "2", "--batch-size", "10", "--lr", "0.5", "--output", str(out), "--quiet"]
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0, capsys.readouterr().err
    rows = read_metrics(out)
    assert [row["round"] for row in rows] == [1, 2, 3] and {row["stage"] for row in rows} == {"recombine"}
    # from about ln(80), an untrained model's, the loss on the speech falls
    losses = [row["test_loss"] for row in rows]
    assert losses[-1] < losses[0] < math.log(80) + 0.2, losses
    # the same numbers one by one in this process
    serial = simulate(dataclasses.replace(read_config(out), output=str(tmp_path / "serial")), serial=True)
    assert results(serial.rows) == results(rows)
