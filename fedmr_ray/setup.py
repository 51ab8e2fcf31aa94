"""One setup step: `prepare(config) -> Setup`.

It checks what a configuration's values cannot say alone (a known dataset, a partition it allows,
a model that takes its input, the algorithm's own settings, a number of clients that fits in
memory, an output directory that can be written), reads the data and splits it among the clients
once, and builds the model's layout and the algorithm. Everything after takes the Setup: the run
directory, the serial backend, and on Ray the coordinator and the executors, which receive it by
reference through the object store. Nothing below this floor validates or recomputes any of it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

from fedmr_ray.algorithms import algorithm_module, settings_of
from fedmr_ray.algorithms.base import Algorithm, AlgorithmContext
from fedmr_ray.config import AlgorithmConfig, Settings, SimulationConfig
from fedmr_ray.data import PARTITIONS, FederatedDataset, Partition, dataset_spec, generated_from_seed, load
from fedmr_ray.data.holdout import client_holdout
from fedmr_ray.errors import SettingError
from fedmr_ray.models import ModelSpec, check_model, model_spec
from fedmr_ray.models.info import ModelInfo, model_info
from fedmr_ray.results import check_output_dir


# What a client costs in memory whatever its data: its size, offsets, sampling and the algorithm's
# tables, through setup and a run (about 250 bytes measured at setup, 200,000 clients): 1 KiB
# admits some 24 million clients on 24 GiB, a million on 1 GiB.
CLIENT_BYTES = 1024
LARGE_POPULATION = 100_000  # clients from which setup says what it is doing: drawing their sizes takes seconds
GIB = 2**30


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


def memory_bytes() -> int:
    """This machine's memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def client_bytes(config: SimulationConfig, whole_synthetic: bool) -> float:
    """Memory per client, estimated without building anything: CLIENT_BYTES, and where the synthetic
    data is made whole (every client's samples at once, for a partition other than its natural
    one), its samples, from the sizes of the first clients."""
    if not whole_synthetic:
        return CLIENT_BYTES
    from fedmr_ray.data.synthetic import DIMENSION, TRAIN_FRACTION, synthetic_offsets

    drawn = min(config.clients, 1000)
    samples = synthetic_offsets(drawn, config.seed)[-1] / drawn / TRAIN_FRACTION
    return CLIENT_BYTES + samples * (DIMENSION * 4 + 8) * 2  # float32 inputs, int64 labels; made, then joined


def check_population(config: SimulationConfig, *, whole_synthetic: bool = False) -> None:
    """A number of clients whose memory (client_bytes) fits in this machine's, else a SettingError:
    a run of 10^12 clients is refused at once rather than spending hours on their sizes first."""
    per_client, memory = client_bytes(config, whole_synthetic), memory_bytes()
    if config.clients * per_client > memory:
        what = "its synthetic samples and bookkeeping" if whole_synthetic else "bookkeeping alone"
        raise SettingError("clients", "--clients", config.clients,
                           f"needs about {config.clients * per_client / GIB:,.4g} GiB ({what}, about "
                           f"{per_client:,.0f} bytes a client), more than this machine's {memory / GIB:.1f} GiB; "
                           f"at most about {int(memory // per_client):,} clients fit here")


def _checked(config: SimulationConfig, resuming: bool,
             whole_synthetic: bool = False) -> tuple[SimulationConfig, Settings]:
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
    check_population(config, whole_synthetic=data.dataset == "synthetic"
                     and (whole_synthetic or not generated_from_seed(data)))
    if config.output is not None and not resuming:
        check_output_dir(config.output)
    return dataclasses.replace(config, algorithm=AlgorithmConfig(config.algorithm.name, **settings.to_dict())), settings


def check(config: SimulationConfig, *, resuming: bool = False, whole_synthetic: bool = False) -> SimulationConfig:
    """Everything `prepare` checks but the data itself (for a run whose data only its cluster
    has); the configuration with the algorithm's settings written out in full. `whole_synthetic`:
    the synthetic data will be made whole, whatever its partition (`fedmr-ray partition` counts
    every client's labels)."""
    return _checked(config, resuming, whole_synthetic)[0]


def prepare(config: SimulationConfig, *, resuming: bool = False) -> Setup:
    """The run set up, or a ConfigError naming what is wrong; `resuming`: the output directory is
    an existing run's. Reads (and, the first time, decodes and caches) the dataset."""
    config, settings = _checked(config, resuming)
    # said only where nothing can be refused after it: a bad input stays the one line of its error
    if config.clients >= LARGE_POPULATION and generated_from_seed(config.data):
        print(f"fedmr-ray: preparing {config.clients:,} clients ...", file=sys.stderr, flush=True)
    data, partition = load(config)
    if data.num_clients != config.clients:  # every partition is made for config.clients
        raise AssertionError(f"the data holds {data.num_clients} clients, not {config.clients}")
    if config.client_eval_every:
        data = dataclasses.replace(data, client_holdout=client_holdout(data, config.seed))
    spec = model_spec(config.model, dataset_spec(config.data.dataset))
    info = model_info(spec)
    algorithm = algorithm_module(config.algorithm.name).make(AlgorithmContext(
        settings, info, data.client_sizes(), data.num_classes, config.data.dataset, config.seed,
        data.cohort_label_counts))
    return Setup(config, data, partition, spec, info, algorithm)
