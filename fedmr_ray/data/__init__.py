"""Datasets: each a `FederatedDataset`, built from the configuration.

A real dataset is read from local files, or from a URI's files copied once into the cache
(sources.py, storage.py), decoded once and cached (cache.py), split
among the clients (partition.py) and normalised. The synthetic one is generated from the seed;
under its natural partition it is exactly `make_synthetic`. A run reads and splits its data once,
through `load` (fedmr_ray.setup.prepare calls it).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fedmr_ray.config import DataConfig, SimulationConfig
from fedmr_ray.errors import ConfigError
from fedmr_ray.data.catalog import DATASETS, PARTITIONS, DatasetSpec, dataset_spec
from fedmr_ray.data.dataset import FederatedDataset
from fedmr_ray.data.partition import (
    ONE_LABEL,
    TWO_LABELS,
    Partition,
    dirichlet_partition,
    iid_partition,
    natural_partition,
    one_label_partition,
    read_partition_file,
    samples_needed,
    shard_partition,
    two_label_partition,
)
from fedmr_ray.data.sources import Decoded, locate, normalise
from fedmr_ray.data.synthetic import generated_synthetic, make_synthetic, synthetic_offsets
from fedmr_ray.rng import Stream, generator
from fedmr_ray.storage import is_uri

__all__ = ["DATASETS", "PARTITIONS", "DatasetSpec", "FederatedDataset", "Partition", "dataset_spec",
           "generated_from_seed", "load", "load_dataset", "load_labels", "load_partition", "make_synthetic",
           "partition_counts", "partition_scheme"]


def partition_scheme(data: DataConfig) -> str:
    """--partition, else the dataset's default: natural where it has users of its own."""
    return data.partition or dataset_spec(data.dataset).default_partition


def generated_from_seed(data: DataConfig) -> bool:
    """The synthetic data under its natural split: each client made from (seed, client) when it
    trains, its samples its own; nothing to store, read or write for it."""
    return data.dataset == "synthetic" and partition_scheme(data) == "natural" and data.partition_file is None


def _decoded(data: DataConfig) -> Decoded:
    from fedmr_ray.data.cache import fetch, load_cached

    spec = dataset_spec(data.dataset)
    folder = fetch(data.data_dir, data.cache_dir) if is_uri(data.data_dir) else spec.data_dir(data.data_dir)
    return load_cached(locate(spec, folder), data.cache_dir)


def _synthetic(config: SimulationConfig) -> tuple[int, int, float, float, bool]:
    """The arguments of make_synthetic and generated_synthetic for this run."""
    data = config.data
    return config.clients, config.seed, data.synthetic_alpha, data.synthetic_beta, data.synthetic_labels == "shared"


def load_labels(config: SimulationConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """(training labels, users' offsets or None) without the inputs, from the cache where it can."""
    data = config.data
    if data.dataset == "synthetic":
        dataset = make_synthetic(*_synthetic(config))
        return dataset.y_train, dataset.client_offsets
    decoded = _decoded(data)
    return np.asarray(decoded.y_train), decoded.users


def make_partition(config: SimulationConfig, labels: np.ndarray, users: np.ndarray | None) -> Partition:
    data, clients = config.data, config.clients
    if data.partition_file is not None:
        return read_partition_file(data.partition_file, clients, len(labels))
    scheme = partition_scheme(data)
    rng = generator(config.seed, Stream.PARTITION)
    if scheme == "natural":
        if users is None:
            raise ConfigError(f"--partition natural: {data.dataset} has no users of its own; accepted for it: "
                              f"{', '.join(p for p in PARTITIONS if p != 'natural')}")
        if clients > len(users) - 1:
            raise ConfigError(f"--clients {clients}: {data.dataset} has {len(users) - 1} users (the natural "
                              "partition); use --clients at most that, or another --partition")
        return natural_partition(users, clients)
    if scheme == "dirichlet":
        return dirichlet_partition(labels, dataset_spec(data.dataset).num_classes, clients, data.alpha,
                                   data.min_samples, rng)
    needed = samples_needed(scheme, clients, data.shards_per_client)
    if len(labels) < needed:
        raise ConfigError(f"--partition {scheme}: {clients} clients need at least {needed} training samples, "
                          f"{data.dataset} has {len(labels)}")
    if scheme == "shards":
        return shard_partition(labels, clients, data.shards_per_client, rng)
    if scheme in ONE_LABEL:
        return one_label_partition(labels, clients, ONE_LABEL[scheme], rng)
    if scheme == TWO_LABELS:
        return two_label_partition(labels, clients, rng)
    return iid_partition(len(labels), clients, rng)


def load_partition(config: SimulationConfig) -> Partition:
    """The clients' samples, as `load_dataset(config)` splits them, computed from the labels alone."""
    if generated_from_seed(config.data):
        return Partition(synthetic_offsets(config.clients, config.seed))
    return make_partition(config, *load_labels(config))


def partition_counts(config: SimulationConfig) -> tuple[Partition, np.ndarray]:
    """The partition and its [clients, classes] label counts."""
    labels, users = load_labels(config)
    partition = make_partition(config, labels, users)
    return partition, partition.label_counts(labels, dataset_spec(config.data.dataset).num_classes)


def _test_end(config: SimulationConfig, decoded: Decoded) -> int | None:
    """Where the run's test set ends in the decoded one (LEAF's datasets): for --femnist-test
    clients, after the test samples of the writers that are clients (the first --clients under the
    natural partition, else every training writer; the test split holds theirs first, writer by
    writer); None: all of it."""
    data = config.data
    if decoded.test_users is None or data.femnist_test == "all":
        return None
    natural = data.partition_file is None and partition_scheme(data) == "natural"
    return int(decoded.test_users[config.clients if natural else -1])


def _inputs(spec: DatasetSpec, data: DataConfig, decoded: np.ndarray) -> np.ndarray:
    """The model inputs: pixels normalised (--normalise); a text's character indices as they are."""
    return np.asarray(decoded) if spec.is_text else normalise(decoded, spec.normalisation(data.normalise))


def load(config: SimulationConfig) -> tuple[FederatedDataset, Partition | None]:
    """The dataset split among the run's clients, and the split (None for data generated from the
    seed, where the seed is the split). The partition is made from the labels before the inputs
    are normalised: a partition that cannot be made fails fast. A missing or malformed dataset,
    or a partition that cannot be made, is a ConfigError."""
    data = config.data
    if generated_from_seed(data):  # generated where and when each client trains
        return generated_synthetic(*_synthetic(config)), None
    if data.dataset == "synthetic":
        base = make_synthetic(*_synthetic(config))
        partition = make_partition(config, base.y_train, base.client_offsets)
    else:
        decoded = _decoded(data)
        y_train = np.asarray(decoded.y_train)
        partition = make_partition(config, y_train, decoded.users)
        spec, end = dataset_spec(data.dataset), _test_end(config, decoded)
        base = FederatedDataset(
            name=data.dataset, x_train=_inputs(spec, data, decoded.x_train), y_train=y_train,
            x_test=_inputs(spec, data, decoded.x_test[:end]), y_test=np.asarray(decoded.y_test[:end]),
            client_offsets=np.zeros(1, np.int64), num_classes=spec.num_classes)
        if not spec.is_text:
            black = normalise(np.zeros((spec.input_shape[0], 1, 1), np.uint8), spec.normalisation(data.normalise))
            base = dataclasses.replace(base, black=tuple(black.ravel().tolist()))
    return dataclasses.replace(base, client_offsets=partition.offsets, client_index=partition.index), partition


def load_dataset(config: SimulationConfig) -> FederatedDataset:
    """The dataset split among the run's clients (`load` without the split)."""
    return load(config)[0]
