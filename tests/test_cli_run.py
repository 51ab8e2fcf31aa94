"""`fedmr-ray simulate` end to end through the command's entry point, on a local Ray."""

import json
import platform
import sys

import numpy as np
import pytest
import torch

from fedmr_ray.cli.main import main
from fedmr_ray.data import make_synthetic
from fedmr_ray.models import ModelSpec
from fedmr_ray.results import read_config, read_metrics


def test_simulate_writes_a_run_directory_that_holds_up(ray_local, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["--clients", "10", "--fraction", "1", "--rounds", "8", "--eval-every", "4", "--seed", "7",
            "--output", str(out), "--quiet"]
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "fedmr: final test accuracy" in printed and str(out) in printed

    config = read_config(out)
    assert config.clients == 10 and config.rounds == 8 and config.algorithm.name == "fedmr"
    origin = json.loads((out / "config.json").read_text())["provenance"]
    assert origin["backend"] == "ray" and origin["executors"] >= 1 and origin["devices"] == ["cpu"]
    assert origin["command"][1:3] == ["simulate", "--clients"] and origin["torch"] == torch.__version__
    assert origin["python"] == platform.python_version() and origin["ray"] and origin["fedmr_ray"]

    rows = read_metrics(out)
    assert [row["round"] for row in rows] == [4, 8]
    assert {row["algorithm"] for row in rows} == {"fedmr"}
    assert {row["stage"] for row in rows} == {"recombine"}
    assert all(row["elapsed_s"] > 0 for row in rows) and rows[0]["elapsed_s"] < rows[1]["elapsed_s"]
    assert all(np.isfinite(row["test_loss"]) and np.isfinite(row["train_loss"]) for row in rows)

    # the saved global model reproduces the last evaluation, and beats guessing the commonest class
    data = make_synthetic(10, seed=7)
    model = ModelSpec("mlp", data.num_classes, data.input_shape).build()
    model.load_state_dict(torch.load(out / "model.pt"))
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.x_test)).argmax(dim=1).numpy()
    accuracy = float((predicted == data.y_test).mean())
    assert accuracy == pytest.approx(rows[-1]["test_accuracy"], abs=1.0 / len(data.y_test))
    commonest = np.bincount(data.y_test).max() / len(data.y_test)
    assert accuracy > commonest + 0.1, (accuracy, commonest)
