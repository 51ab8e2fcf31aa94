"""Data read from and results written to URIs (pyarrow.fs), against an S3 server on localhost."""

import json
import sys

import pytest

from datafiles import write_idx
from fedmr_ray import DataConfig, SimulationConfig, TrainConfig, simulate
from fedmr_ray.cli.main import main
from fedmr_ray.results import read_config, read_metrics
from runs import results

BASE = SimulationConfig(clients=6, fraction=0.5, rounds=4, eval_every=1, seed=3, model="mlp",
                        train=TrainConfig(local_epochs=1, batch_size=10))


def with_(config, **changes):
    return SimulationConfig(**{**config.__dict__, **changes})


@pytest.fixture(scope="module")
def dataset(s3_server, tmp_path_factory):
    """A small Fashion-MNIST-shaped dataset, on disk and in s3://data/fmnist."""
    local = tmp_path_factory.mktemp("fmnist")
    write_idx(local, n_train=120, n_test=30)
    s3_server.bucket("data")
    s3_server.upload(local, "s3://data/fmnist")
    s3_server.bucket("runs")
    return local


def fmnist(data_dir, cache_dir) -> DataConfig:
    return DataConfig(dataset="fmnist", data_dir=str(data_dir), cache_dir=str(cache_dir), alpha=1.0, min_samples=2)


def test_data_from_s3_and_results_to_s3_are_those_of_local_files(s3_server, dataset, tmp_path):
    local = simulate(with_(BASE, data=fmnist(dataset, tmp_path / "c1"), output=str(tmp_path / "run")), serial=True)
    uri = "s3://runs/a"
    remote = simulate(with_(BASE, data=fmnist("s3://data/fmnist", tmp_path / "c2"), output=uri), serial=True)
    assert results(remote) == results(local)
    assert s3_server.names(uri) == ["clients.parquet", "config.json", "metrics.parquet", "model.pt", "partition.parquet"]
    assert results(read_metrics(uri)) == results(read_metrics(tmp_path / "run"))
    assert read_config(uri).data.data_dir == "s3://data/fmnist"
    assert [p.name for p in (tmp_path / "c2").iterdir() if p.name.startswith("remote-")]  # copied once, cached
    # read back as a user would: the report command on the URI
    code = run_cli(["report", uri, "--output", str(tmp_path / "r.png")])
    assert code == 0 and (tmp_path / "r.png").is_file()


def test_a_run_on_s3_goes_on_from_its_checkpoint_when_retried(s3_server, dataset, tmp_path):
    """A retried job (the same command, --resume-if-exists) goes on from the checkpoint its first
    attempt left on S3, and ends as an uninterrupted run."""
    config = with_(BASE, data=fmnist(dataset, tmp_path / "c"), checkpoint_every=2)
    whole = simulate(with_(config, output=str(tmp_path / "whole")), serial=True)
    uri = "s3://runs/retried"
    simulate(with_(config, rounds=2, output=uri), serial=True)  # the first attempt, stopped after round 2
    assert "checkpoint.npz" in s3_server.names(uri)
    again = simulate(with_(config, output=uri), serial=True, resume_if_exists=True)
    assert results(again) == results(whole) == results(read_metrics(uri))
    resumed = json.loads(s3_server.fs.open_input_stream("runs/retried/config.json").read())["provenance"]["resumed"]
    assert [r["from_round"] for r in resumed] == [2]


def run_cli(args, monkeypatch=None):
    argv = sys.argv
    sys.argv = ["fedmr-ray", *args]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = argv
    return exit_info.value.code


BAD_URIS = [
    (["--output", "foo://bucket/run"], "--output foo://bucket/run: the scheme foo:// is not one pyarrow.fs opens"),
    (["--output", "s3://no-such-bucket/run"], "--output s3://no-such-bucket/run: no-such-bucket does not exist"),
    (["--output", "s3://runs/full"], "--output s3://runs/full: directory is not empty"),
    (["--data-dir", "s3://data/nothing-here", "--dataset", "fmnist"], "--data-dir s3://data/nothing-here: no files there"),
    (["--data-dir", "s3://no-such-bucket/fmnist", "--dataset", "fmnist"], "--data-dir s3://no-such-bucket/fmnist: no-such-bucket does not exist"),
    (["--data-dir", "abfs://container/fmnist", "--dataset", "fmnist"], "--data-dir abfs://container/fmnist: cannot open it"),
    (["--resume", "s3://runs/never-ran"], "--resume s3://runs/never-ran: no readable config.json"),
    (["--output", "s3://runs/full/train-labels-idx1-ubyte.gz"], "exists and is not a directory"),
]


@pytest.mark.parametrize(("args", "message"), BAD_URIS)
def test_a_bad_uri_is_one_line_and_exit_2_with_nothing_written(s3_server, dataset, tmp_path, capsys, args, message):
    s3_server.upload(dataset, "s3://runs/full")
    before = {bucket: s3_server.names(f"s3://{bucket}") for bucket in ("runs", "data")}
    settings = [] if "--resume" in args else ["--clients", "4", "--cache-dir", str(tmp_path / "c")]
    settings += ["--output", "s3://runs/new"] if "--output" not in args and "--resume" not in args else []
    code = run_cli(["simulate", "--serial", "--rounds", "1", *settings, *args])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert {bucket: s3_server.names(f"s3://{bucket}") for bucket in ("runs", "data")} == before


def test_a_sweep_into_a_uri_is_refused_in_one_line(s3_server, tmp_path, capsys):
    (tmp_path / "s.toml").write_text("[grid]\nseed = [0, 1]\n")
    code = run_cli(["sweep", str(tmp_path / "s.toml"), "--output", "s3://runs/sweep"])
    err = capsys.readouterr().err
    assert code == 2 and "--output s3://runs/sweep: a sweep's directory is a folder" in err and err.count("\n") == 1


def test_an_interrupt_during_an_upload_never_publishes_part_of_a_file(s3_server, tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) while a file is being uploaded: the upload finishes whole, then the
    interrupt goes on. (Closing a stream cut short would publish the part written so far: a
    0-byte metrics.parquet was seen this way when a job was stopped.)"""
    import shutil
    import signal

    from fedmr_ray import storage

    s3_server.bucket("uploads")
    local = tmp_path / "metrics.parquet"
    local.write_bytes(b"x" * 1000)
    real_copy = shutil.copyfileobj

    def interrupted_copy(src, dst, length=0):  # half the file, Ctrl-C while the stream is open, the rest
        dst.write(src.read(500))
        signal.raise_signal(signal.SIGINT)  # to this thread, at once (os.kill may reach another, later)
        real_copy(src, dst, length)

    monkeypatch.setattr(storage.shutil, "copyfileobj", interrupted_copy)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as Python's, whatever this process had
    try:
        with pytest.raises(KeyboardInterrupt):
            storage.Remote.open("s3://uploads/run", "--output").upload(local, "metrics.parquet")
    finally:
        signal.signal(signal.SIGINT, before)
    assert s3_server.fs.open_input_stream("uploads/run/metrics.parquet").read() == b"x" * 1000


def test_resume_from_a_uri_goes_on_from_its_checkpoint(s3_server, dataset, tmp_path, capsys):
    """`fedmr-ray simulate --resume s3://...`, the command an interrupted run prints."""
    config = with_(BASE, data=fmnist(dataset, tmp_path / "c"), checkpoint_every=2)
    whole = simulate(with_(config, output=str(tmp_path / "whole")), serial=True)
    uri = "s3://runs/to-resume"
    simulate(with_(config, rounds=2, output=uri), serial=True)
    code = run_cli(["simulate", "--resume", uri, "--rounds", "4", "--serial", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert results(read_metrics(uri)) == results(whole)
