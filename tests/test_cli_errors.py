"""Bad input: one line on stderr naming the value and what is accepted, exit code 2, nothing written."""

import os
import shutil
import subprocess
import sys

import pytest

from fedmr_ray.cli.main import main

BAD = [
    (["--clients", "0"], "--clients 0"),
    (["--fraction", "1.5"], "--fraction 1.5"),
    (["--fraction", "0"], "--fraction 0.0"),
    (["--rounds", "0"], "--rounds 0"),
    (["--algorithm", "fedsgd"], "--algorithm 'fedsgd': accepted values are: fedmr, fedavg"),
    (["--granularity", "rows"], "--granularity 'rows': must be tensor, layer, or block:P"),
    (["--model", "resnet9000"], "--model 'resnet9000': accepted values are"),
    (["--local-epochs", "0"], "--local-epochs 0"),
    (["--lr", "-1"], "--lr -1.0"),
    (["--cpus-per-actor", "0"], "--cpus-per-actor 0.0"),
    (["--clients", "many"], "Invalid value for '--clients'"),
    (["--no-such-flag"], "No such option: --no-such-flag"),
]


def run_main(monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_flag_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, args, message):
    out_dir = tmp_path / "run"
    code, captured = run_main(monkeypatch, capsys, [*args, "--output", str(out_dir)])
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert not out_dir.exists()


def test_output_that_already_holds_a_run_is_refused_and_kept(monkeypatch, capsys, tmp_path):
    (tmp_path / "metrics.parquet").write_text("earlier results")
    code, captured = run_main(monkeypatch, capsys, ["--output", str(tmp_path)])
    assert code == 2 and "is not empty" in captured.err and captured.err.count("\n") == 1
    assert (tmp_path / "metrics.parquet").read_text() == "earlier results"


def test_output_that_cannot_be_created_is_refused(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, captured = run_main(monkeypatch, capsys, ["--output", str(blocker / "run")])
    assert code == 2 and f"--output {blocker / 'run'}" in captured.err


@pytest.mark.parametrize("args", [["--fraction", "2"], ["--clients", "x"]])
def test_installed_command_prints_no_traceback(tmp_path, args):
    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or shutil.which("fedmr-ray")
    if exe is None:
        pytest.skip("the fedmr-ray command is not installed")
    proc = subprocess.run([exe, "simulate", *args, "--output", str(tmp_path / "r")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "RAY_ADDRESS": ""})
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("fedmr-ray: error: ")


@pytest.mark.parametrize(("address", "message"), [
    ("ray://head:10001", "--address ray://head:10001: Ray Client (ray://) is not supported"),
    ("127.0.0.1:1", "--address 127.0.0.1:1: no Ray cluster answered there within 2 s (--connect-timeout)"),
    ("nohost", "--address nohost: must be host:port of the cluster's head"),
])
def test_an_address_that_cannot_serve_is_one_line_within_the_timeout(monkeypatch, capsys, tmp_path, address, message):
    code, captured = run_main(monkeypatch, capsys, ["--address", address, "--connect-timeout", "2", "--rounds", "1",
                                                    "--output", str(tmp_path / "run")])
    assert code == 2 and captured.err.startswith(f"fedmr-ray: error: {message}")
    assert captured.err.count("\n") == 1 and not (tmp_path / "run").exists()
