"""Partitions: the dirichlet split's properties, iid, shards and the reference's non-IID cases,
files (the run's Parquet and the reference's JSON) read back and checked, the `partition` command,
and bad input through the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from fedmr_ray.cli.main import main
from datafiles import write_idx
from fedmr_ray.config import ConfigError, DataConfig, SimulationConfig
from fedmr_ray.data import load_dataset, load_partition
from fedmr_ray.data.partition import (
    ONE_LABEL,
    Partition,
    dirichlet_partition,
    iid_partition,
    one_label_partition,
    read_partition_file,
    shard_partition,
    two_label_partition,
)
from fedmr_ray.data import make_synthetic
from fedmr_ray.results import PARTITION, RunDirectory
from fedmr_ray.rng import Stream, generator
from fedmr_ray.setup import check, prepare

LABELS = np.repeat(np.arange(10), 300)  # 3000 samples, 10 balanced classes


def skew(partition: Partition, labels: np.ndarray, classes: int) -> float:
    """Mean total-variation distance between a client's label distribution and the whole set's."""
    counts = partition.label_counts(labels, classes)
    shares = counts / counts.sum(axis=1, keepdims=True)
    overall = np.bincount(labels, minlength=classes) / len(labels)
    return float(0.5 * np.abs(shares - overall).sum(axis=1).mean())


def dirichlet(alpha: float, clients: int = 20, seed: int = 0, min_samples: int = 10) -> Partition:
    return dirichlet_partition(LABELS, 10, clients, alpha, min_samples, generator(seed, Stream.PARTITION))


@pytest.mark.parametrize("alpha", [0.05, 0.5, 5.0])
def test_dirichlet_gives_every_sample_to_one_client_and_every_client_min_samples(alpha):
    split = dirichlet(alpha, min_samples=25)
    assert split.num_clients == 20 and split.sizes().min() >= 25
    assert np.array_equal(np.sort(split.sample_index()), np.arange(len(LABELS)))


def test_dirichlet_label_skew_falls_as_alpha_rises():
    skews = [np.mean([skew(dirichlet(alpha, seed=seed), LABELS, 10) for seed in range(3)])
             for alpha in (0.05, 0.5, 5.0, 500.0)]
    assert skews == sorted(skews, reverse=True), skews
    assert skews[0] > 0.6 and skews[-1] < 0.1, skews


def test_dirichlet_is_seeded_and_refuses_what_it_cannot_do():
    assert np.array_equal(dirichlet(0.5).sample_index(), dirichlet(0.5).sample_index())
    assert not np.array_equal(dirichlet(0.5).sample_index(), dirichlet(0.5, seed=1).sample_index())
    with pytest.raises(ConfigError, match="--min-samples 200: 20 clients need 4000 samples, the training set has 3000"):
        dirichlet(0.5, min_samples=200)
    with pytest.raises(ConfigError, match="--partition dirichlet: no draw in 1000 gave each of 100 clients"):
        dirichlet(0.01, clients=100, min_samples=30)


def test_iid_and_shards():
    rng = generator(0, Stream.PARTITION)
    iid = iid_partition(3001, 7, rng)
    assert iid.sizes().tolist() == [428] * 7 and len(np.unique(iid.sample_index())) == 7 * 428
    assert skew(iid_partition(3000, 10, rng), LABELS, 10) < 0.1
    shards = shard_partition(LABELS, 15, 2, rng)  # 30 shards of 100: each within one class
    counts = shards.label_counts(LABELS, 10)
    assert shards.sizes().tolist() == [200] * 15 and ((counts > 0).sum(axis=1) <= 2).all()
    assert len(np.unique(shards.sample_index())) == 3000


# --- the reference's non-IID cases (utils/sampling.py) ----------------------------------------

SORTED = np.repeat(np.arange(10), 100)  # 1000 samples, sorted by label: 100 shards of 10, 10 per class


def shards_of(partition: Partition, client: int) -> list[tuple[int, int]]:
    """(shard, position in it) of each of the client's samples: the reference's 100 shards of 10."""
    return [divmod(int(i), 10) for i in partition.sample_index()[partition.offsets[client]:partition.offsets[client + 1]]]


def test_one_label_is_the_reference_case_1_one_shard_each():
    split = one_label_partition(SORTED, 100, 1.0, generator(0, Stream.PARTITION))
    counts = split.label_counts(SORTED, 10)
    assert split.sizes().tolist() == [10] * 100 and ((counts > 0).sum(axis=1) == 1).all()
    assert (counts > 0).sum(axis=0).tolist() == [10] * 10  # each label's 10 shards, each to one client
    owned = [{shard for shard, _ in shards_of(split, c)} for c in range(100)]
    assert all(len(s) == 1 for s in owned) and sorted(min(s) for s in owned) == list(range(100))
    fewer = one_label_partition(SORTED, 20, 1.0, generator(0, Stream.PARTITION))  # 20 of the 100 shards
    assert fewer.sizes().tolist() == [10] * 20 and ((fewer.label_counts(SORTED, 10) > 0).sum(axis=1) == 1).all()
    more = one_label_partition(np.repeat(np.arange(10), 200), 200, 1.0, generator(0, Stream.PARTITION))
    assert more.sizes().tolist() == [10] * 200  # one shard per client where there are more than 100


@pytest.mark.parametrize(("share", "own", "extra"), [(0.8, 8, 1), (0.5, 5, 5)])
def test_one_label_80_and_50_are_the_reference_cases_3_and_4(share, own, extra):
    split = one_label_partition(SORTED, 100, share, generator(0, Stream.PARTITION))
    # int(1000 / 100 * (1 - share)) from the pool, in floats as the reference: 1.9999999999999996 -> 1 at 0.8
    assert split.sizes().tolist() == [own + extra] * 100
    assert len(np.unique(split.sample_index())) == 100 * (own + extra)
    firsts = []
    for client in range(100):
        held = shards_of(split, client)
        shard = held[0][0]
        assert held[:own] == [(shard, i) for i in range(own)]  # the first `share` of a shard of its own
        assert all(position >= own for _, position in held[own:])  # then from every shard's rest
        firsts.append(shard)
    assert sorted(firsts) == list(range(100))
    counts = split.label_counts(SORTED, 10)
    assert (counts.max(axis=1) >= own).all()


def test_one_label_80_sizes_follow_the_reference_arithmetic_on_cifar_and_fashion_mnist():
    rng = generator(0, Stream.PARTITION)
    assert set(one_label_partition(np.repeat(np.arange(10), 5000), 100, 0.8, rng).sizes()) == {400 + 99}
    assert set(one_label_partition(np.repeat(np.arange(10), 6000), 100, 0.8, rng).sizes()) == {480 + 119}
    assert set(one_label_partition(np.repeat(np.arange(10), 6000), 100, 0.5, rng).sizes()) == {300 + 300}
    # fewer clients than shards: each still gets a single shard's first 80%, and a larger share of the pool
    assert set(one_label_partition(SORTED, 20, 0.8, rng).sizes()) == {8 + 9}  # int(1000 / 20 * 0.2) = 9


def test_two_labels_is_the_reference_case_2_one_half_shard_from_each_half_of_the_labels():
    split = two_label_partition(SORTED, 100, generator(0, Stream.PARTITION))
    counts = split.label_counts(SORTED, 10)
    assert split.sizes().tolist() == [10] * 100 and len(np.unique(split.sample_index())) == 1000
    for row in counts:
        (low,), (high,) = np.flatnonzero(row[:5]), np.flatnonzero(row[5:])
        assert row[low] == 5 and row[5 + high] == 5  # a half-shard (of 200) of labels 0-4 and one of 5-9


@pytest.mark.parametrize("scheme", ["one-label", "two-labels", "one-label-80", "one-label-50"])
def test_the_reference_cases_follow_the_runs_seed(tmp_path, scheme):
    write_idx(tmp_path / "mnist", n_train=1000, train_labels=SORTED)

    def split(seed: int) -> Partition:
        return load_partition(SimulationConfig(clients=100, seed=seed, data=DataConfig(
            dataset="mnist", data_dir=str(tmp_path / "mnist"), cache_dir=str(tmp_path / "c"), partition=scheme)))

    rng = generator(3, Stream.PARTITION)
    direct = (two_label_partition(SORTED, 100, rng) if scheme == "two-labels"
              else one_label_partition(SORTED, 100, ONE_LABEL[scheme], rng))
    assert np.array_equal(split(3).sample_index(), direct.sample_index())
    assert np.array_equal(split(3).offsets, direct.offsets)
    assert not np.array_equal(split(4).sample_index(), direct.sample_index())


# --- files ----------------------------------------------------------------------------------

def test_parquet_round_trip_through_the_run_directory(tmp_path):
    split = dirichlet(0.3)
    RunDirectory(tmp_path).write_partition(split)
    table = pq.read_table(tmp_path / PARTITION)
    assert table.column_names == ["client_id", "sample_index"] and table.num_rows == len(LABELS)
    back = read_partition_file(str(tmp_path / PARTITION), 20, len(LABELS))
    assert np.array_equal(back.offsets, split.offsets) and np.array_equal(back.sample_index(), split.sample_index())


@pytest.mark.parametrize("wrapped", [False, True])
def test_reference_json_round_trip(tmp_path, wrapped):
    split = dirichlet(0.3)
    clients = {str(c): split.sample_index()[split.offsets[c]:split.offsets[c + 1]].tolist() for c in range(20)}
    if wrapped:  # the reference's record file: {"dataset": ..., "train_data": {client: [indices]}}
        clients = {"dataset": "cifar10", "num_users": 20, "train_data": clients}
    path = tmp_path / "split.json"
    path.write_text(json.dumps(clients))
    back = read_partition_file(str(path), 20, len(LABELS))
    assert np.array_equal(back.offsets, split.offsets) and np.array_equal(back.sample_index(), split.sample_index())


def test_a_run_saves_the_partition_it_trains_on_and_reloads_it(tmp_path):
    write_idx(tmp_path / "mnist", n_train=200)
    data = DataConfig(dataset="mnist", data_dir=str(tmp_path / "mnist"), cache_dir=str(tmp_path / "cache"),
                      alpha=0.3, min_samples=5)
    setup = prepare(SimulationConfig(clients=8, seed=3, data=data, output=str(tmp_path / "run")))
    run = RunDirectory.create(setup, {})
    trained = setup.data
    saved = read_partition_file(str(run.path / PARTITION), 8, 200)
    assert np.array_equal(saved.offsets, trained.client_offsets)
    assert np.array_equal(saved.sample_index(), trained.client_index)
    again = SimulationConfig(clients=8, seed=99, data=DataConfig(
        dataset="mnist", data_dir=data.data_dir, cache_dir=data.cache_dir, partition_file=str(run.path / PARTITION)))
    assert np.array_equal(load_dataset(check(again)).client_index, trained.client_index)


def test_synthetic_natural_split_is_the_seeds_and_not_written(tmp_path):
    setup = prepare(SimulationConfig(clients=30, seed=2, output=str(tmp_path / "run")))
    cfg = setup.config
    run = RunDirectory.create(setup, {})
    data = setup.data
    assert data.client_index is None and data.make_client is not None  # each client made when it trains
    assert not (run.path / PARTITION).exists()
    eager = make_synthetic(30, seed=2)
    assert np.array_equal(load_partition(cfg).offsets, eager.client_offsets)
    assert np.array_equal(data.client_offsets, eager.client_offsets)
    assert np.array_equal(data.materialize().x_train, eager.x_train)


def test_synthetic_can_be_split_by_label_too(tmp_path):
    cfg = check(SimulationConfig(clients=20, data=DataConfig(partition="dirichlet", alpha=0.1)))
    data = load_dataset(cfg)
    assert np.array_equal(np.sort(data.client_index), np.arange(len(data.y_train)))
    assert skew(Partition(data.client_offsets, data.client_index), data.y_train, 10) > 0.5


# --- bad input: one line, exit 2, nothing written -------------------------------------------

def _files(tmp_path):
    write_idx(tmp_path / "mnist", n_train=40)
    good = {str(c): [2 * c, 2 * c + 1] for c in range(4)}
    files = {
        "too_few.json": {str(c): [c] for c in range(3)},
        "out_of_range.json": {**good, "3": [7, 40]},
        "negative.json": {**good, "1": [-1]},
        "empty_client.json": {**good, "2": []},
        "bad_ids.json": {**{str(c): [c] for c in range(3)}, "9": [5]},
        "not_a_map.json": [[0, 1], [2, 3]],
    }
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "not.parquet").write_text("plain text")
    return tmp_path


BAD_FILES = [
    ("too_few.json", "holds 3 clients, but --clients is 4"),
    ("out_of_range.json", "client 3: sample index 40 is out of range: the training set has 40 samples (0..39)"),
    ("negative.json", "client 1: sample index -1 is out of range"),
    ("empty_client.json", "client 2 holds no samples"),
    ("bad_ids.json", "client id 9 is not in 0..3"),
    ("not_a_map.json", "not JSON mapping client id -> list of sample indices"),
    ("broken.json", "not JSON mapping client id -> list of sample indices"),
    ("not.parquet", "not Parquet with integer columns client_id, sample_index"),
    ("missing.parquet", "no such file"),
]


def run_main(monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize("command", ["simulate", "partition"])
@pytest.mark.parametrize(("name", "message"), BAD_FILES)
def test_bad_partition_file_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, command, name, message):
    root = _files(tmp_path)
    out = tmp_path / "out"
    code, captured = run_main(monkeypatch, capsys, [
        command, "--dataset", "mnist", "--data-dir", str(root / "mnist"), "--cache-dir", str(tmp_path / "cache"),
        "--clients", "4", "--partition-file", str(root / name), "--output", str(out)])
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert lines[0].startswith(f"fedmr-ray: error: --partition-file {root / name}: ") and message in lines[0], lines[0]
    assert "Traceback" not in captured.err and not out.exists()


BAD_FLAGS = [
    (["--partition", "pathological"], ("--partition 'pathological': accepted values are: iid, dirichlet, "
                                       "shards, one-label, two-labels, one-label-80, one-label-50, natural")),
    (["--dataset", "mnist", "--data-dir", "{mnist}", "--clients", "4", "--partition", "one-label"],
     "--partition one-label: 4 clients need at least 100 training samples, mnist has 40"),
    (["--dataset", "mnist", "--data-dir", "{mnist}", "--clients", "4", "--partition", "two-labels"],
     "--partition two-labels: 4 clients need at least 200 training samples, mnist has 40"),
    (["--alpha", "0"], "--alpha 0.0: must be > 0"),
    (["--min-samples", "0"], "--min-samples 0: must be an integer >= 1"),
    (["--shards-per-client", "0"], "--shards-per-client 0: must be an integer >= 1"),
    (["--dataset", "imagenet"], "--dataset 'imagenet': accepted values are: synthetic, cifar10"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent"], "--dataset cifar10: /nonexistent: no such directory"),
    (["--partition", "natural", "--dataset", "mnist", "--data-dir", "{mnist}"], "mnist has no users of its own"),
    (["--partition", "iid", "--partition-file", "x.json"], "give one of them, not both"),
    (["--dataset", "mnist", "--data-dir", "{mnist}", "--clients", "41", "--partition", "iid"],
     "--partition iid: 41 clients need at least 41 training samples, mnist has 40"),
]


@pytest.mark.parametrize("command", ["simulate", "partition"])
@pytest.mark.parametrize(("args", "message"), BAD_FLAGS)
def test_bad_data_flags_are_one_line_exit_2(tmp_path, monkeypatch, capsys, command, args, message):
    write_idx(tmp_path / "mnist", n_train=40)
    out = tmp_path / "out"
    args = [a.replace("{mnist}", str(tmp_path / "mnist")) for a in args]
    code, captured = run_main(monkeypatch, capsys, [command, *args, "--cache-dir", str(tmp_path / "c"),
                                                    "--output", str(out)])
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], captured.err
    assert not out.exists()


# --- the partition command ------------------------------------------------------------------

def test_partition_command_prints_writes_and_its_file_reloads(tmp_path, monkeypatch, capsys):
    write_idx(tmp_path / "mnist", n_train=300, train_labels=np.repeat(np.arange(10), 30))
    common = ["--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--cache-dir", str(tmp_path / "c"),
              "--clients", "6", "--seed", "4"]
    out = tmp_path / "split"
    code, captured = run_main(monkeypatch, capsys, ["partition", *common, "--alpha", "0.2", "--output", str(out),
                                                    "--rows", "3"])
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == "mnist, partition dirichlet (alpha 0.2), seed 4"
    assert lines[1] == "6 clients, 300 samples, 10 classes"
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["client", "samples"])
    assert lines[header].split() == ["client", "samples", *map(str, range(10))]
    assert len(lines[header + 1].split()) == 12 and "... 3 more clients" in lines[header + 4]
    assert (out / "partition.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cfg = SimulationConfig(clients=6, seed=4, data=DataConfig(
        dataset="mnist", data_dir=str(tmp_path / "mnist"), cache_dir=str(tmp_path / "c"), alpha=0.2))
    expected = load_partition(cfg)
    printed = [int(lines[header + 1 + c].split()[1]) for c in range(3)]
    assert printed == expected.sizes()[:3].tolist()
    reloaded = read_partition_file(str(out / PARTITION), 6, 300)
    assert np.array_equal(reloaded.sample_index(), expected.sample_index())
