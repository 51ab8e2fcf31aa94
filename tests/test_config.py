"""The configuration as data: typed, checked when made, importable alone, the same from Python,
dicts and files."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from fedmr_ray.config import (
    AlgorithmConfig,
    ConfigError,
    DataConfig,
    RuntimeConfig,
    SettingError,
    SimulationConfig,
    TrainConfig,
    UnknownKey,
)


def test_the_configuration_imports_neither_torch_nor_the_rest_of_the_package():
    code = ("import sys, fedmr_ray.config; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'ray', 'scipy', 'pyarrow', "
            "'fedmr_ray')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(loaded) == ["fedmr_ray", "fedmr_ray.config", "fedmr_ray.errors"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: SimulationConfig(clients="10"), "--clients '10': must be an integer"),
    (lambda: SimulationConfig(clients=10.0), "--clients 10.0: must be an integer"),
    (lambda: SimulationConfig(clients=True), "--clients True: must be an integer"),
    (lambda: SimulationConfig(clients=0), "--clients 0: must be an integer >= 1"),
    (lambda: SimulationConfig(fraction=0), "--fraction 0.0: must be in (0, 1]"),
    (lambda: SimulationConfig(model=3), "--model 3: must be a string"),
    (lambda: SimulationConfig(output=7), "--output 7: must be a string (or none)"),
    (lambda: TrainConfig(lr="fast"), "--lr 'fast': must be a number"),
    (lambda: TrainConfig(momentum=1.0), "--momentum 1.0: must be in [0, 1)"),
    (lambda: DataConfig(alpha=-1), "--alpha -1.0: must be > 0"),
    (lambda: DataConfig(augment="yes"), "--augment 'yes': must be true or false"),
    (lambda: RuntimeConfig(num_actors=0), "--num-actors 0: must be an integer >= 1"),
    (lambda: RuntimeConfig(gpus_per_actor=-0.5), "--gpus-per-actor -0.5: must be >= 0"),
    (lambda: RuntimeConfig(gpus_per_actor=1.5), "--gpus-per-actor 1.5: must be a fraction in [0, 1] or a whole"),
    (lambda: SimulationConfig(data={"alpha": 0}), "--alpha 0.0: must be > 0"),
    (lambda: AlgorithmConfig("fedprox", mu=[1]), "--mu [1]: must be a number, a string or true/false"),
])
def test_a_bad_value_is_one_clear_error_when_the_configuration_is_made(make, message):
    with pytest.raises(SettingError) as caught:
        make()
    assert str(caught.value) == message or str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_an_error_in_a_section_knows_where_its_setting_sits():
    with pytest.raises(SettingError) as caught:
        SimulationConfig.from_dict({"train": {"lr": 0}})
    assert caught.value.key == "train.lr" and caught.value.flag == "--lr"
    assert str(caught.value.in_file("exp.toml")) == "exp.toml: train.lr = 0.0: must be > 0"


def test_a_misspelt_key_names_itself_and_what_is_accepted():
    with pytest.raises(UnknownKey, match=r"'data.alpah': unknown setting; accepted: dataset, data_dir, .*alpha"):
        SimulationConfig.from_dict({"data": {"alpah": 0.1}})
    with pytest.raises(UnknownKey, match=r"'client': unknown setting; accepted: clients, fraction"):
        SimulationConfig.from_dict({"client": 10})
    with pytest.raises(ConfigError, match="must be a table of settings"):
        SimulationConfig.from_dict({"data": 3})


def test_numbers_are_converted_to_the_settings_types():
    config = SimulationConfig(clients=np.int64(12), fraction=1, data={"alpha": 1}, train=TrainConfig(lr=1))
    assert type(config.clients) is int and config.clients == 12
    assert type(config.fraction) is float and type(config.data.alpha) is float and type(config.train.lr) is float
    json.dumps(config.to_dict())  # plain data


def test_dicts_round_trip_and_configurations_are_values():
    config = SimulationConfig(clients=50, data=DataConfig(dataset="fmnist", alpha=0.1),
                              algorithm=AlgorithmConfig("fedprox", mu=0.1), runtime=RuntimeConfig(num_actors=2))
    again = SimulationConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and hash(again) == hash(config)
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.to_dict()["algorithm"] == {"name": "fedprox", "mu": 0.1}
    assert AlgorithmConfig("moon", temperature=0.2, mu=1.0) == AlgorithmConfig("moon", mu=1.0, temperature=0.2)
    with pytest.raises(AttributeError):
        config.algorithm.name = "fedavg"


def test_results_dict_leaves_out_where_and_how_long_a_run_executes():
    a = SimulationConfig(rounds=10, output="x", checkpoint_every=2, runtime=RuntimeConfig(num_actors=1))
    b = SimulationConfig(rounds=20, output="y", checkpoint_every=0, runtime=RuntimeConfig(num_actors=4))
    assert a.results_dict() == b.results_dict()
    assert a.results_dict() != SimulationConfig(seed=1).results_dict()
