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
    (["--clients", "1000000000000"], "--clients 1000000000000: needs about"),
    (["--clients", str(2**80)], f"--clients {2**80}: needs about"),
    (["--clients", "1000000", "--partition", "dirichlet"], "(its synthetic samples and bookkeeping"),
    (["--client-eval-every", "-1"], "--client-eval-every -1: must be an integer >= 0"),
    (["--synthetic-labels", "global"], "--synthetic-labels 'global': must be per-client or shared"),
    (["--normalise", "imagenet"], "--normalise 'imagenet': must be reference or half"),
    (["--femnist-test", "every"], "--femnist-test 'every': must be clients or all"),
    (["--partition", "noniid-case-1"], ("--partition 'noniid-case-1': accepted values are: iid, dirichlet, "
                                        "shards, one-label, two-labels, one-label-80, one-label-50, natural")),
    (["--tensorboard", "/proc/fedmr/tb"], "--tensorboard /proc/fedmr/tb: cannot create it (/proc is not a writable"),
    (["--tensorboard", "tb", "--seeds", "0,1"], "--tensorboard tb: not with --seeds"),
    (["--algorithm", "scaffold", "--scaffold-variant", "karimireddy"],
     "--scaffold-variant 'karimireddy': must be reference or paper"),
    (["--algorithm", "clusamp", "--clusamp-variant", "fixed"],
     "--clusamp-variant 'fixed': must be reference, reference-fixed or paper"),
    (["--algorithm", "fedmut", "--radius", "-1"], "--radius -1.0: must be a number >= 0"),
    (["--algorithm", "fedmut", "--mut-acc-rate", "1.5"], "--mut-acc-rate 1.5: must be a number in [0, 1]"),
    (["--algorithm", "fedmut", "--mut-bound", "0"], "--mut-bound 0: must be an integer >= 1"),
    (["--algorithm", "fedasam", "--rho", "0"], "--rho 0.0: must be > 0"),
    (["--algorithm", "fedasam", "--eta", "-1"], "--eta -1.0: must be >= 0"),
    (["--algorithm", "fedmr", "--radius", "2"], "--radius: not a setting of algorithm fedmr"),
    (["--algorithm", "fedavg", "--scaffold-variant", "paper"],
     "--scaffold-variant: not a setting of algorithm fedavg (it has no settings of its own)"),
    (["--model", "vgg16"], ("--model vgg16: needs 32x32 images (cifar) or 1x28x28 ones (femnist, mnist, fmnist), "
                            "not input of shape 60 (--dataset synthetic)")),
    (["--dataset", "cifar10", "--model", "cnn-mnist"], ("--model cnn-mnist: needs 1x28x28 images (femnist, mnist, "
                                                        "fmnist), not input of shape 3x32x32 (--dataset cifar10)")),
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


def test_a_population_that_cannot_fit_is_refused_before_anything_is_built(monkeypatch, capsys, tmp_path):
    import fedmr_ray.setup as setup

    def built(config):
        raise AssertionError(f"{config.clients} clients built before the refusal")

    monkeypatch.setattr(setup, "load", built)
    monkeypatch.setattr(setup, "memory_bytes", lambda: 24 * 2**30)
    code, captured = run_main(monkeypatch, capsys, ["--clients", "1000000000000", "--output", str(tmp_path / "run")])
    assert code == 2 and captured.err.count("\n") == 1
    assert "more than this machine's 24.0 GiB; at most about 25,165,824 clients fit here" in captured.err
    assert not (tmp_path / "run").exists()


def test_a_million_clients_fit_in_24_gib_and_setup_says_it_is_preparing_them(monkeypatch, capsys):
    from fedmr_ray.config import SimulationConfig
    import fedmr_ray.setup as setup

    monkeypatch.setattr(setup, "memory_bytes", lambda: 24 * 2**30)
    setup.check(SimulationConfig(clients=1_000_000, fraction=0.01))  # the synthetic data made client by client
    monkeypatch.setattr(setup, "LARGE_POPULATION", 20)
    setup.prepare(SimulationConfig(clients=20, fraction=0.5))
    assert capsys.readouterr().err == "fedmr-ray: preparing 20 clients ...\n"


@pytest.mark.parametrize("command", ["simulate", "partition"])
def test_output_under_proc_is_refused_before_anything_is_made(monkeypatch, capsys, command):
    # permission bits let root write in /proc, where no folder can be made
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", command, "--clients", "10", "--output", "/proc/fedmr-ray/run"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("fedmr-ray: error: --output /proc/fedmr-ray/run: cannot create it (/proc is not a writable")


def test_more_clients_than_samples_is_the_one_line_of_its_error(monkeypatch, capsys, tmp_path):
    from datafiles import write_idx
    import fedmr_ray.setup as setup

    write_idx(tmp_path / "d", n_train=40)
    monkeypatch.setattr(setup, "LARGE_POPULATION", 10)  # a population large enough to say it is being prepared
    code, captured = run_main(monkeypatch, capsys, [
        "--dataset", "mnist", "--data-dir", str(tmp_path / "d"), "--cache-dir", str(tmp_path / "cache"),
        "--partition", "iid", "--clients", "50", "--output", str(tmp_path / "run")])
    assert code == 2 and captured.err == ("fedmr-ray: error: --partition iid: 50 clients need at least 50 training "
                                          "samples, mnist has 40\n")
    assert not (tmp_path / "run").exists()
