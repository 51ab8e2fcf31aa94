"""`fedmr-ray simulate --config FILE`: every setting a key, flags over the file, a run's config.json
re-runs the run; a bad file is one line naming the file and the key, exit 2, nothing written."""

import json
import sys

import pytest
import yaml

from fedmr_ray.cli.main import main
from fedmr_ray.config import AlgorithmConfig
from fedmr_ray.results import read_config, read_metrics
from runs import results

TOML = """\
clients = 12
fraction = 0.25
rounds = 2
eval_every = 1
seed = 3

[train]
local_epochs = 1
lr = 0.05

[algorithm]
name = "fedprox"
mu = 0.1

[data]
synthetic_alpha = 0.5
"""
AS_DICT = {"clients": 12, "fraction": 0.25, "rounds": 2, "eval_every": 1, "seed": 3,
           "train": {"local_epochs": 1, "lr": 0.05}, "algorithm": {"name": "fedprox", "mu": 0.1},
           "data": {"synthetic_alpha": 0.5}}


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", "--serial", "--quiet", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_a_config_file_sets_every_key_and_flags_win_over_it(tmp_path, monkeypatch, capsys, suffix):
    file = tmp_path / f"exp{suffix}"
    file.write_text({".toml": TOML, ".json": json.dumps(AS_DICT), ".yaml": yaml.safe_dump(AS_DICT)}[suffix])
    code, out = run(monkeypatch, capsys, "--config", file, "--seed", "4", "--output", tmp_path / "run")
    assert code == 0, out.err
    config = read_config(tmp_path / "run")
    assert (config.clients, config.fraction, config.rounds, config.seed) == (12, 0.25, 2, 4)  # --seed won
    assert config.train.lr == 0.05 and config.train.local_epochs == 1 and config.data.synthetic_alpha == 0.5
    assert config.algorithm == AlgorithmConfig("fedprox", mu=0.1)


def test_settings_may_be_given_by_their_flat_names_at_the_top(tmp_path, monkeypatch, capsys):
    file = tmp_path / "flat.toml"
    file.write_text('clients = 12\nrounds = 1\nalgorithm = "moon"\nmu = 2.0\nlocal_epochs = 1\nsynthetic_beta = 0.5\n'
                    '[train]\nlr = 0.02\n')
    code, out = run(monkeypatch, capsys, "--config", file, "--output", tmp_path / "run")
    assert code == 0, out.err
    config = read_config(tmp_path / "run")
    assert config.algorithm == AlgorithmConfig("moon", mu=2.0, temperature=0.5)
    assert (config.train.local_epochs, config.train.lr, config.data.synthetic_beta) == (1, 0.02, 0.5)


def test_a_runs_config_json_reruns_it_to_the_same_metrics(tmp_path, monkeypatch, capsys):
    (tmp_path / "exp.toml").write_text(TOML)
    assert run(monkeypatch, capsys, "--config", tmp_path / "exp.toml", "--output", tmp_path / "first")[0] == 0
    code, out = run(monkeypatch, capsys, "--config", tmp_path / "first" / "config.json", "--output", tmp_path / "again")
    assert code == 0, out.err
    first, again = read_metrics(tmp_path / "first"), read_metrics(tmp_path / "again")
    assert results(again) == results(first) and len(first) == 2
    assert read_config(tmp_path / "again").results_dict() == read_config(tmp_path / "first").results_dict()


BAD_FILES = [
    ("clientz = 10", "exp.toml: clientz: unknown setting; accepted: clients, fraction"),
    ("[data]\nalpah = 0.1", "exp.toml: data.alpah: unknown setting; accepted: dataset, data_dir"),
    ("[trian]\nlr = 0.1", "exp.toml: trian: unknown setting; accepted: clients"),
    ('clients = "ten"', "exp.toml: clients = 'ten': must be an integer"),
    ("clients = 10.5", "exp.toml: clients = 10.5: must be an integer"),
    ("[train]\nlr = 0", "exp.toml: train.lr = 0.0: must be > 0"),
    ("data = 3", "exp.toml: data = 3: must be a table of settings"),
    ('[algorithm]\nname = "fedsgd"', "exp.toml: algorithm.name = 'fedsgd': accepted values are: fedmr, fedavg"),
    ('[algorithm]\nname = "fedavg"\nmu = 0.1', "exp.toml: algorithm.mu: not a setting of algorithm fedavg"),
    ("[algorithm]\nmu = 0.1", "exp.toml: algorithm.mu: not a setting of algorithm fedmr (its settings are"),
    ('[algorithm]\ngranularity = "rows"', "exp.toml: algorithm.granularity = 'rows': must be tensor, layer"),
    ('[data]\ndataset = "cifar11"', "exp.toml: data.dataset = 'cifar11': accepted values are: synthetic"),
    ('model = "resnet9000"', "exp.toml: model = 'resnet9000': accepted values are: mlp"),
    ('[data]\npartition = "rows"', "exp.toml: data.partition = 'rows': accepted values are: iid"),
    ("clients = [", "--config {file}: not valid TOML"),
    ("alpha = 0", "exp.toml: alpha = 0.0: must be > 0"),  # named as the file wrote it
    ('algorithm = "fedavg"\nmu = 0.1', "exp.toml: mu: not a setting of algorithm fedavg"),
    ("alpha = 0.1\n[data]\nalpha = 0.2", "exp.toml: data.alpha is given twice (as alpha and data.alpha)"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[m.split(": ")[1] for _, m in BAD_FILES])
def test_a_bad_file_is_one_line_naming_the_file_and_key(tmp_path, monkeypatch, capsys, text, message):
    file = tmp_path / "exp.toml"
    file.write_text(text + "\n")
    code, out = run(monkeypatch, capsys, "--config", file, "--output", tmp_path / "run")
    assert code == 2
    lines = out.err.strip().splitlines()
    expected = message.replace("exp.toml", str(file)).replace("{file}", str(file))
    assert len(lines) == 1 and lines[0].startswith(f"fedmr-ray: error: {expected}"), out.err
    assert not (tmp_path / "run").exists()


def test_a_flag_over_a_bad_file_value_wins_and_a_bad_flag_is_named_as_a_flag(tmp_path, monkeypatch, capsys):
    file = tmp_path / "exp.toml"
    file.write_text(TOML.replace("lr = 0.05", "lr = 0"))
    code, out = run(monkeypatch, capsys, "--config", file, "--lr", "0.05", "--output", tmp_path / "run")
    assert code == 0, out.err
    code, out = run(monkeypatch, capsys, "--config", file, "--fraction", "2", "--output", tmp_path / "other")
    assert code == 2 and out.err == "fedmr-ray: error: --fraction 2.0: must be in (0, 1]\n"


@pytest.mark.parametrize(("name", "message"), [
    ("nope.toml", "--config {path}: cannot read it"),
    ("exp.ini", "--config {path}: accepted files are .toml, .json, .yaml, .yml"),
])
def test_a_missing_or_unknown_file_is_refused(tmp_path, monkeypatch, capsys, name, message):
    path = tmp_path / name
    if name.endswith(".ini"):
        path.write_text("[x]\n")
    code, out = run(monkeypatch, capsys, "--config", path, "--output", tmp_path / "run")
    assert code == 2 and out.err.startswith("fedmr-ray: error: " + message.format(path=path)), out.err
    assert out.err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_config_and_resume_are_not_given_together(tmp_path, monkeypatch, capsys):
    (tmp_path / "exp.toml").write_text(TOML)
    code, out = run(monkeypatch, capsys, "--config", tmp_path / "exp.toml", "--resume", tmp_path)
    assert code == 2 and "--config and --resume: give one of them" in out.err
