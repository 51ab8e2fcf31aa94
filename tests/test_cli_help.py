"""What `fedmr-ray` shows of itself: its help (once; -h as --help), its version, the values each
choice accepts, one clean line per command; and which loss its progress and summary name."""

from __future__ import annotations

import io
import re
import sys
from importlib.metadata import version

import pytest

from fedmr_ray.cli.main import main

COMMANDS = ["simulate", "partition", "models", "report", "sweep", "k8s"]


def invoke(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("args", [[], ["k8s"]])
def test_a_command_given_nothing_prints_its_help_once(monkeypatch, capsys, args):
    code, out, err = invoke(monkeypatch, capsys, *args)
    assert code == 0 and out.count("Usage: ") == 1 and err == ""


@pytest.mark.parametrize("args", [[], ["simulate"], ["partition"], ["models"], ["report"], ["sweep"], ["k8s"],
                                  ["k8s", "render"]])
def test_h_is_help_on_every_command(monkeypatch, capsys, args):
    short = invoke(monkeypatch, capsys, *args, "-h")
    assert short == invoke(monkeypatch, capsys, *args, "--help")
    assert short[0] == 0 and short[1].count("Usage: ") == 1 and re.search(r"--help +-h ", short[1])


def test_version(monkeypatch, capsys):
    assert invoke(monkeypatch, capsys, "--version") == (0, f"fedmr-ray {version('fedmr-ray')}\n", "")


def test_each_command_is_one_line_of_the_list(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    out = invoke(monkeypatch, capsys, "--help")[1].splitlines()
    start = next(i for i, line in enumerate(out) if "Commands" in line)
    rows = out[start + 1:next(i for i in range(start, len(out)) if out[i].startswith("╰"))]
    assert [row.split()[1] for row in rows] == COMMANDS


def test_the_help_shows_what_each_choice_accepts(monkeypatch, capsys):
    from fedmr_ray.algorithms import registry
    from fedmr_ray.cli.progress import LOG_FORMATS
    from fedmr_ray.data.catalog import DATASETS, PARTITIONS
    from fedmr_ray.models import CUSTOM, MODELS

    monkeypatch.setenv("COLUMNS", "1000")  # each option's help on one line
    out = invoke(monkeypatch, capsys, "simulate", "--help")[1].splitlines()
    accepted = {flag: ", ".join(values) for flag, values in [
        ("--algorithm", registry()), ("--dataset", DATASETS), ("--model", [*MODELS, CUSTOM]),
        ("--partition", PARTITIONS), ("--log-format", LOG_FORMATS)]}
    accepted["--granularity"] = "tensor, layer, or block:P"
    for flag, values in accepted.items():
        line = next(line for line in out if line.split()[1:2] == [flag])
        assert f"[accepted: {values}" in line, line


def test_the_bar_names_the_test_accuracy_and_the_train_loss():
    from rich.console import Console

    from fedmr_ray.cli.progress import Bar
    from fedmr_ray.config import SimulationConfig
    from fedmr_ray.federation import RoundRecord

    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    bar = Bar(SimulationConfig(rounds=10), console)
    bar.setup("set up", {})
    bar.round(RoundRecord(round=1, stage="recombine", train_loss=0.5, executors=1, server_s=0.0, test_accuracy=0.75,
                          test_loss=1.25), 1.0, None)
    bar.close()
    assert "test acc 0.7500  train loss 0.500" in console.file.getvalue()


def test_the_summary_names_the_test_loss(monkeypatch, capsys, tmp_path):
    code, out, err = invoke(monkeypatch, capsys, "simulate", "--serial", "--quiet", "--clients", "10", "--fraction",
                            "0.2", "--rounds", "1", "--local-epochs", "1", "--output", str(tmp_path / "run"))
    assert code == 0, err
    assert "fedmr: final test accuracy" in out and " (test loss " in out


def test_bracketed_words_in_the_help_are_shown_not_taken_for_markup(monkeypatch, capsys):
    """rich reads [word] as a style tag and drops it: the sweep file's sections must be escaped."""
    monkeypatch.setenv("COLUMNS", "1000")
    out = invoke(monkeypatch, capsys, "sweep", "--help")[1]
    assert "[base], [grid], [[runs]], [resources]" in out
    assert "[default: runs/sweep-<timestamp>]" in out
