"""Every algorithm end to end through the `fedmr-ray simulate` entry point, on a local Ray."""

import sys

import numpy as np
import pytest

from fedmr_ray.cli.main import main
from fedmr_ray.algorithms import ALGORITHMS
from fedmr_ray.results import read_metrics


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_each_algorithm_runs_from_the_command_line(ray_local, tmp_path, monkeypatch, capsys, algorithm):
    out = tmp_path / "run"
    args = ["--clients", "12", "--fraction", "0.25", "--rounds", "3", "--eval-every", "1", "--local-epochs", "1",
            "--algorithm", algorithm, "--output", str(out), "--quiet"]
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0, capsys.readouterr().err
    rows = read_metrics(out)
    assert [row["round"] for row in rows] == [1, 2, 3]
    assert {row["algorithm"] for row in rows} == {algorithm}
    assert all(np.isfinite(row["test_loss"]) and 0.0 <= row["test_accuracy"] <= 1.0 for row in rows)
    assert f"{algorithm}: final test accuracy" in capsys.readouterr().out
