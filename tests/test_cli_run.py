"""`fedmr-ray simulate` end to end through the command's entry point, on a local Ray."""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

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

    every = read_metrics(out)
    assert [row["round"] for row in every] == list(range(1, 9))  # a row per round, the test columns where evaluated
    assert all(row["clients"] == 10 and row["down_bytes"] == row["up_bytes"] > 0 for row in every)
    rows = [row for row in every if row["test_accuracy"] is not None]
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


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_logs_get_a_line_per_evaluation_and_one_every_so_often(tmp_path, monkeypatch, capsys, log_format):
    """Where stderr is no terminal (kubectl logs, ray job logs), progress comes as lines."""
    import fedmr_ray.cli.progress as progress

    monkeypatch.setattr(progress, "LINE_EVERY", 0.0)  # a line every round, not only every 30 s
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", "--clients", "10", "--rounds", "4", "--eval-every",
                                      "2", "--local-epochs", "1", "--serial", "--log-format", log_format,
                                      "--output", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 0 and len(err) == 5, err  # setup, then rounds 1 to 4
    if log_format == "json":
        events = [json.loads(line) for line in err]
        assert [e["event"] for e in events] == ["setup", "round", "round", "round", "round"]
        assert [e["round"] for e in events[1:]] == [1, 2, 3, 4] and events[1]["test_accuracy"] is None
        assert events[2]["test_accuracy"] == read_metrics(tmp_path / "run")[1]["test_accuracy"]
        assert events[4]["eta_s"] == 0.0
    else:
        assert err[0].startswith("fedmr-ray: fedmr: 10 clients, 1 per round")
        assert err[2].startswith("fedmr-ray: round 2/4 test accuracy ") and "eta" in err[2]
        assert err[1].startswith("fedmr-ray: round 1/4 train loss ")


def test_an_unknown_log_format_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", "--log-format", "xml", "--output", str(tmp_path / "r")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "fedmr-ray: error: --log-format 'xml': accepted values are: text, json\n"


def test_a_model_module_of_the_current_directory_reaches_the_executors_and_their_warnings_the_log(tmp_path):
    """`--model mymodel:factory` with mymodel.py where the command runs (not on any path): the
    driver imports it as `python -m` would, Ray sends it to the executors, and what the executors
    warn shows in the command's log."""
    import os
    import shutil
    import subprocess

    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or shutil.which("fedmr-ray")
    if exe is None:
        pytest.skip("the fedmr-ray command is not installed")
    (tmp_path / "mymodel.py").write_text(
        "import warnings\nimport torch\n\n\nclass Tiny(torch.nn.Module):\n"
        "    def __init__(self, classes, shape):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(shape[-1], classes)\n\n"
        "    def forward(self, x):\n        if self.training:\n"
        "            warnings.warn('mymodel: trained on an executor')\n        return self.fc(x)\n\n\n"
        "def tiny(num_classes, input_shape):\n    return Tiny(num_classes, input_shape)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"RAY_ADDRESS": ""}
    done = subprocess.run([exe, "simulate", "--model", "mymodel:tiny", "--clients", "10", "--rounds", "2",
                           "--local-epochs", "1", "--num-actors", "1", "--quiet", "--output", "run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "(Executor pid=" in done.stderr and "mymodel: trained on an executor" in done.stderr
    assert read_config(tmp_path / "run").model == "mymodel:tiny"


def test_a_dead_cluster_that_ray_start_left_named_is_not_joined(tmp_path):
    """Ray names the cluster `ray start` last started in a file it leaves behind when that cluster
    dies without `ray stop`; ray.init() without an address waited on the dead address forever."""
    temp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths live under it
    try:
        os.makedirs(f"{temp}/ray")
        with open(f"{temp}/ray/ray_current_cluster", "w") as named:
            named.write("192.0.2.1:6390")  # TEST-NET-1: nothing answers there
        env = {**os.environ, "RAY_TMPDIR": temp, "RAY_AUTH_MODE": "disabled"}
        env.pop("RAY_ADDRESS", None)
        exe = os.path.join(os.path.dirname(sys.executable), "fedmr-ray")
        out = subprocess.run([exe, "simulate", "--clients", "10", "--rounds", "1", "--num-actors", "1", "--quiet",
                              "--output", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300,
                             check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        assert (tmp_path / "run" / "metrics.parquet").is_file()
    finally:
        shutil.rmtree(temp, ignore_errors=True)
