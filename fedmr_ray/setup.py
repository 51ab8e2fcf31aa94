"""One setup step: `prepare(config) -> Setup`.

It checks what a configuration's values cannot say alone (a known dataset, a partition it allows,
a model that takes its input, the algorithm's own settings, an output directory that can be
written), reads the data and splits it among the clients once, and builds the model's layout and
the algorithm. Everything after takes the Setup: the run directory, the serial backend, and on Ray
the coordinator and the executors, which receive it by reference through the object store. Nothing
below this floor validates or recomputes any of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fedmr_ray.algorithms import algorithm_module, settings_of
from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext
from fedmr_ray.config import AlgorithmConfig, Settings, SimulationConfig
from fedmr_ray.data import PARTITIONS, FederatedDataset, Partition, dataset_spec, load
from fedmr_ray.errors import SettingError
from fedmr_ray.models import ModelSpec, check_model
from fedmr_ray.models.info import ModelInfo, model_info
from fedmr_ray.results import check_output_dir


@dataclass(frozen=True)
class Setup:
    """A run, set up: what every backend and the run directory work from."""

    config: SimulationConfig  # checked, the algorithm's settings written out in full
    data: FederatedDataset  # split among the clients
    partition: Partition | None  # which samples each client holds; None where the seed is the split
    spec: ModelSpec
    info: ModelInfo
    algorithm: Algorithm

    @property
    def clients(self) -> int:
        return self.data.num_clients


def _checked(config: SimulationConfig, resuming: bool) -> tuple[SimulationConfig, Settings]:
    data = config.data
    spec = dataset_spec(data.dataset)
    if data.partition is not None and data.partition not in PARTITIONS:
        raise SettingError("data.partition", "--partition", data.partition,
                           f"accepted values are: {', '.join(PARTITIONS)}")
    if data.partition is not None and data.partition_file is not None:
        raise SettingError("data.partition_file", "--partition-file", data.partition_file,
                           f"--partition {data.partition} is given too: give one of them, not both", quote=False)
    if data.augment and not spec.is_cifar:
        raise SettingError("data.augment", "--augment",
                           problem=f"random crop and flip are for CIFAR images, not --dataset {data.dataset}")
    check_model(config.model, spec)
    settings = settings_of(config.algorithm)
    if config.output is not None and not resuming:
        check_output_dir(config.output)
    return dataclasses.replace(config, algorithm=AlgorithmConfig(config.algorithm.name, **settings.to_dict())), settings


def check(config: SimulationConfig, *, resuming: bool = False) -> SimulationConfig:
    """Everything `prepare` checks but the data itself (for a run whose data only its cluster
    has); the configuration with the algorithm's settings written out in full."""
    return _checked(config, resuming)[0]


def prepare(config: SimulationConfig, *, resuming: bool = False) -> Setup:
    """The run set up, or a ConfigError naming what is wrong; `resuming`: the output directory is
    an existing run's. Reads (and, the first time, decodes and caches) the dataset."""
    config, settings = _checked(config, resuming)
    data, partition = load(config)
    if data.num_clients != config.clients:  # every partition is made for config.clients
        raise AssertionError(f"the data holds {data.num_clients} clients, not {config.clients}")
    spec = ModelSpec(config.model, data.num_classes, data.input_shape)
    info = model_info(spec)
    algorithm = algorithm_module(config.algorithm.name).make(AlgorithmContext(
        settings, info, data.client_sizes(), data.num_classes, config.data.dataset, config.seed,
        data.cohort_label_counts))
    return Setup(config, data, partition, spec, info, algorithm)
