"""One setup step: the data read and split once per run, in the driver; the serial backend and the
Ray runtime working from the same Setup; algorithms' own settings; algorithms from other packages."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import ray

from fedmr_ray import AlgorithmConfig, DataConfig, SimulationConfig, TrainConfig, simulate
from fedmr_ray.algorithms import registry, settings_of
from fedmr_ray.config import ConfigError, SettingError
from fedmr_ray.results import read_config
from fedmr_ray.setup import prepare
from runs import record_results, results

SMALL = SimulationConfig(clients=12, fraction=0.25, rounds=2, eval_every=1, train=TrainConfig(local_epochs=1))


def counted(log: str, name: str, function):
    """`function`, each call of which appends its name and the process's id to the file `log`."""
    def call(*args, **kwargs):
        with open(log, "a") as f:
            f.write(f"{name} {os.getpid()}\n")
        return function(*args, **kwargs)
    return call


def count_loads(log: str) -> None:
    """A worker process's start: every call of the data's load (as the setup step calls it) and of
    the partition appends a line to `log`."""
    import fedmr_ray.data as data
    import fedmr_ray.setup as setup

    setup.load = counted(log, "load", data.load)
    data.make_partition = counted(log, "partition", data.make_partition)


@pytest.fixture(scope="module")
def counting_ray(tmp_path_factory):
    """A local Ray whose every worker process counts its loads and partitions too."""
    log = str(tmp_path_factory.mktemp("counts") / "calls.log")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             runtime_env={"worker_process_setup_hook": lambda: count_loads(log)})
    yield log
    ray.shutdown()


def test_a_ray_run_reads_and_splits_its_data_once_in_the_driver(counting_ray, tmp_path, monkeypatch):
    import fedmr_ray.data
    import fedmr_ray.setup

    log = Path(counting_ray)
    monkeypatch.setattr(fedmr_ray.setup, "load", counted(counting_ray, "load", fedmr_ray.data.load))
    monkeypatch.setattr(fedmr_ray.data, "make_partition", counted(counting_ray, "partition", fedmr_ray.data.make_partition))
    images = DataConfig(dataset="synthetic", partition="dirichlet", alpha=0.3)  # a partition to compute
    config = replace(SMALL, data=images, output=str(tmp_path / "run"))
    history = simulate(config)
    calls = log.read_text().split("\n")[:-1]
    assert sorted(line.split()[0] for line in calls) == ["load", "partition"], calls
    assert {int(line.split()[1]) for line in calls} == {os.getpid()}  # the driver's, not the coordinator's
    assert [row["round"] for row in history] == [1, 2]
    assert (tmp_path / "run" / "partition.parquet").is_file()  # written from the same split


def test_serial_and_ray_backends_run_the_same_setup(counting_ray):
    from fedmr_ray.runtime.driver import RayRun
    from fedmr_ray.serial import SerialRun

    setup = prepare(replace(SMALL, algorithm=AlgorithmConfig("scaffold")))
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = SerialRun(setup)
        serial_records = [serial.step() for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    on_ray = RayRun(setup)
    assert on_ray.describe()["entries"] == serial.describe()["entries"]
    ray_records = [on_ray.step() for _ in range(2)]
    assert [record_results(r) for r in ray_records] == [record_results(r) for r in serial_records]


def test_an_algorithms_settings_are_typed_checked_and_written_out():
    assert settings_of(AlgorithmConfig("fedprox")).mu == 0.01 and settings_of(AlgorithmConfig("moon")).mu == 5.0
    assert settings_of(AlgorithmConfig("scaffold", server_lr=2)).server_lr == 2.0
    assert prepare(replace(SMALL, algorithm=AlgorithmConfig("fedmr"))).config.algorithm == AlgorithmConfig(
        "fedmr", first_stage_bound=0, granularity="tensor", diverse_init=False)
    with pytest.raises(ConfigError, match=r"^--mu: not a setting of algorithm fedavg \(it has no settings of its own\)$"):
        settings_of(AlgorithmConfig("fedavg", mu=0.1))
    with pytest.raises(ConfigError, match=r"^--temperature: not a setting of algorithm fedprox \(its settings are mu\)$"):
        settings_of(AlgorithmConfig("fedprox", temperature=0.1))
    with pytest.raises(SettingError, match=r"^--mu -1.0: must be >= 0$") as caught:
        settings_of(AlgorithmConfig("moon", mu=-1))
    assert caught.value.key == "algorithm.mu"
    with pytest.raises(SettingError, match=r"^--algorithm 'fedsgd': accepted values are: fedmr, fedavg"):
        settings_of(AlgorithmConfig("fedsgd"))


PLUGIN = '''
from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import Algorithm, ServerStep
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting


@dataclass(frozen=True)
class Settings(Base):
    keep: float = setting(0.5, "Toy: how much of the model the clients started from stays.",
                          check=lambda v: 0 <= v < 1, must="in [0, 1)")


class KeepAverage(Algorithm):
    def __init__(self, keep):
        self.keep = keep

    def server_step(self, round_index, sizes, rng):
        return ServerStep(weights=np.full(len(sizes), (1 - self.keep) / len(sizes)), keep=self.keep)

    def global_weights(self, sizes):
        return None


def make(ctx):
    return KeepAverage(ctx.settings.keep)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A package installed beside fedmr-ray that registers the algorithm `keepavg` by entry point."""
    (tmp_path / "keepavg.py").write_text(PLUGIN)
    info = tmp_path / "keepavg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: keepavg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fedmr_ray.algorithms]\nkeepavg = keepavg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.cache_clear()
    yield tmp_path
    registry.cache_clear()


def test_an_algorithm_of_another_package_registers_by_entry_point(plugin, tmp_path):
    assert "keepavg" in registry()
    torch_threads = __import__("torch").get_num_threads()
    __import__("torch").set_num_threads(1)
    try:
        runs = {keep: simulate(replace(SMALL, algorithm=AlgorithmConfig("keepavg", keep=keep)), serial=True)
                for keep in (0.0, 0.5)}
    finally:
        __import__("torch").set_num_threads(torch_threads)
    assert results(runs[0.0]) != results(runs[0.5])
    assert {row["algorithm"] for row in runs[0.5]} == {"keepavg"}
    with pytest.raises(SettingError, match=r"--keep 1.0: must be in \[0, 1\)"):
        prepare(replace(SMALL, algorithm=AlgorithmConfig("keepavg", keep=1)))

    # its settings are flags of the command too
    exe = Path(sys.executable).with_name("fedmr-ray")
    env = {**os.environ, "PYTHONPATH": str(plugin), "RAY_ADDRESS": ""}
    shown = subprocess.run([exe, "simulate", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert "--keep" in shown.stdout and "keepavg" in shown.stdout
    args = ["--clients", "10", "--rounds", "2", "--serial", "--quiet", "--algorithm", "keepavg"]
    ran = subprocess.run([exe, "simulate", *args, "--keep", "0.25", "--output", str(tmp_path / "run")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert read_config(tmp_path / "run").algorithm == AlgorithmConfig("keepavg", keep=0.25)
    refused = subprocess.run([exe, "simulate", *args, "--keep", "2", "--output", str(tmp_path / "bad")],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and refused.stderr == "fedmr-ray: error: --keep 2.0: must be in [0, 1)\n"
    assert not (tmp_path / "bad").exists()


def test_the_command_line_package_is_not_installed_as_cli(tmp_path):
    code = "import importlib.util, fedmr_ray.cli.main; print(importlib.util.find_spec('cli'))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert found.returncode == 0 and found.stdout.strip() == "None", found.stderr
