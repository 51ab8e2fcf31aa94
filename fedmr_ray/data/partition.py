"""Which training samples each client holds: iid, dirichlet (label skew), random shards, the
reference's non-IID cases, or the dataset's own users, computed from the labels and a seeded
generator; or read from a file (Parquet, or the reference's JSON of client id -> sample indices).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fedmr_ray.errors import ConfigError, one_line

MAX_DIRICHLET_DRAWS = 1000
REFERENCE_SHARDS = 100  # the reference's num_shards (of 500 CIFAR or 600 (Fashion-)MNIST samples)
# the reference's non-IID cases 1, 3 and 4 (noniid_ratio_r_label_1): the share of one shard a client holds
ONE_LABEL = {"one-label": 1.0, "one-label-80": 0.8, "one-label-50": 0.5}
TWO_LABELS = "two-labels"  # its case 2 (noniid_label_2)
COLUMNS = ("client_id", "sample_index")  # a partition as a table: one row per (client, sample)


@dataclass(frozen=True)
class Partition:
    """Client c holds the training samples index[offsets[c]:offsets[c + 1]] (rows offsets[c]..
    offsets[c + 1] - 1 themselves when `index` is None), as FederatedDataset stores them."""

    offsets: np.ndarray
    index: np.ndarray | None = None

    @property
    def num_clients(self) -> int:
        return len(self.offsets) - 1

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sample_index(self) -> np.ndarray:
        """Every client's samples, client after client."""
        return np.arange(self.offsets[-1], dtype=np.int64) if self.index is None else self.index

    def client_ids(self) -> np.ndarray:
        """The client of each entry of `sample_index()`."""
        return np.repeat(np.arange(self.num_clients, dtype=np.int64), self.sizes())

    def label_counts(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """[clients, classes]: how many samples of each class each client holds."""
        flat = self.client_ids() * num_classes + labels[self.sample_index()]
        return np.bincount(flat, minlength=self.num_clients * num_classes).reshape(self.num_clients, num_classes)

    @classmethod
    def from_clients(cls, clients: list[np.ndarray]) -> Partition:
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in clients])]).astype(np.int64)
        index = np.concatenate(clients).astype(np.int64) if clients else np.zeros(0, np.int64)
        return cls(offsets, index)


def iid_partition(num_samples: int, num_clients: int, rng: np.random.Generator) -> Partition:
    """As the reference: each client int(N / clients) samples drawn without replacement; the
    remainder goes unused."""
    size = num_samples // num_clients
    order = rng.permutation(num_samples)[: size * num_clients]
    return Partition(np.arange(num_clients + 1, dtype=np.int64) * size, order.astype(np.int64))


def _dealt(by_label: np.ndarray, shards: np.ndarray, size: int) -> Partition:
    """Client c holds the shards shards[c] (each `size` samples of `by_label`), in turn."""
    rows = (shards[:, :, None] * size + np.arange(size)).reshape(len(shards), -1)
    return Partition(np.arange(len(shards) + 1, dtype=np.int64) * rows.shape[1], by_label[rows.ravel()].astype(np.int64))


def shard_partition(labels: np.ndarray, num_clients: int, shards_per_client: int,
                    rng: np.random.Generator) -> Partition:
    """Random label shards (McMahan et al.'s pathological non-IID split): the samples sorted by
    label, cut into clients x shards_per_client equal shards, each client given shards_per_client
    of them at random, whatever their labels; the remainder goes unused. Not the reference's cases
    (one_label_partition, two_label_partition)."""
    count = num_clients * shards_per_client
    by_label = np.argsort(labels, kind="stable")
    return _dealt(by_label, rng.permutation(count).reshape(num_clients, shards_per_client), len(labels) // count)


def reference_shards(num_clients: int) -> int:
    """The shards of the reference's cases: its 100, or one per client where there are more."""
    return max(REFERENCE_SHARDS, num_clients)


def one_label_partition(labels: np.ndarray, num_clients: int, share: float, rng: np.random.Generator) -> Partition:
    """The reference's non-IID cases 1, 3 and 4 (utils/sampling.py noniid_ratio_r_label_1, share 1,
    0.8, 0.5): the samples sorted by label, cut into `reference_shards` shards; each client holds
    the first `share` of a shard of its own, drawn without replacement, and where share < 1,
    int(N / clients x (1 - share)) samples drawn without replacement from the pool of every shard's
    rest (N the shards' samples; in floats as the reference: 99 on CIFAR's 100 clients at 0.8)."""
    shards = reference_shards(num_clients)
    size = len(labels) // shards
    by_label = np.argsort(labels, kind="stable")
    cuts = ((np.arange(shards) + share) * size).astype(np.int64)  # the reference's int((shard + share) * size)
    own = rng.permutation(shards)[:num_clients]
    held = [by_label[shard * size:cuts[shard]] for shard in own]
    if share < 1:
        pool = np.concatenate([by_label[cuts[shard]:(shard + 1) * size] for shard in range(shards)])
        each = int(shards * size / num_clients * (1 - share))
        drawn = pool[rng.permutation(len(pool))[:each * num_clients]].reshape(num_clients, each)
        held = [np.concatenate([mine, extra]) for mine, extra in zip(held, drawn)]
    return Partition.from_clients(held)


def two_label_partition(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partition:
    """The reference's non-IID case 2 (utils/sampling.py noniid_label_2): the samples sorted by
    label, cut into 2 x `reference_shards` half-shards; each client holds one half-shard from the
    lower half of the labels and one from the upper half, each drawn without replacement."""
    shards = reference_shards(num_clients)
    by_label = np.argsort(labels, kind="stable")
    lower, upper = rng.permutation(shards)[:num_clients], shards + rng.permutation(shards)[:num_clients]
    return _dealt(by_label, np.stack([lower, upper], axis=1), len(labels) // (2 * shards))


def samples_needed(scheme: str, num_clients: int, shards_per_client: int) -> int:
    """The fewest training samples `scheme` can split among `num_clients` (one each at least)."""
    if scheme == "shards":
        return num_clients * shards_per_client
    if scheme == "one-label":
        return reference_shards(num_clients)
    if scheme in ONE_LABEL or scheme == TWO_LABELS:
        return 2 * reference_shards(num_clients)
    return num_clients


def natural_partition(users: np.ndarray, num_clients: int) -> Partition:
    """The dataset's own users, the first `num_clients` of them: user u's rows are contiguous."""
    return Partition(users[: num_clients + 1].astype(np.int64))


def _dirichlet_draw(by_class: list[np.ndarray], num_samples: int, num_clients: int, alpha: float,
                    rng: np.random.Generator) -> list[list[np.ndarray]] | None:
    """One draw of the reference's separate_data; None where a class found every client full."""
    held: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    sizes = np.zeros(num_clients, dtype=np.int64)
    for rows in by_class:
        rows = rows[rng.permutation(len(rows))]
        proportions = rng.dirichlet(np.full(num_clients, alpha))
        proportions = proportions * (sizes < num_samples / num_clients)  # full clients get no more
        total = proportions.sum()
        if not total > 0:
            return None
        cuts = (np.cumsum(proportions / total) * len(rows)).astype(np.int64)[:-1]
        for client, part in enumerate(np.split(rows, cuts)):
            held[client].append(part)
            sizes[client] += len(part)
    return held


def dirichlet_partition(labels: np.ndarray, num_classes: int, num_clients: int, alpha: float, min_samples: int,
                        rng: np.random.Generator) -> Partition:
    """Label skew as the reference's utils/dataset_utils.separate_data: for each class in turn,
    its samples shuffled and cut in proportions ~ Dir(alpha) over the clients, where a client
    already holding N / clients samples or more gets none of the classes after; the whole draw
    repeated until every client holds at least `min_samples`."""
    if len(labels) < num_clients * min_samples:
        raise ConfigError(f"--min-samples {min_samples}: {num_clients} clients need {num_clients * min_samples} "
                          f"samples, the training set has {len(labels)}")
    by_class = [np.flatnonzero(labels == k) for k in range(num_classes)]
    for _ in range(MAX_DIRICHLET_DRAWS):
        held = _dirichlet_draw(by_class, len(labels), num_clients, alpha, rng)
        if held is not None and min(sum(len(p) for p in parts) for parts in held) >= min_samples:
            return Partition.from_clients([np.concatenate(parts) for parts in held])
    raise ConfigError(f"--partition dirichlet: no draw in {MAX_DIRICHLET_DRAWS} gave each of {num_clients} clients "
                      f"--min-samples {min_samples} (--alpha {alpha:g}, {len(labels)} samples); lower --min-samples, "
                      "raise --alpha or use fewer --clients")


# --- files ----------------------------------------------------------------------------------

def read_partition_file(path: str, num_clients: int, num_samples: int) -> Partition:
    """A partition file: Parquet with columns client_id, sample_index, or JSON mapping client id
    -> list of sample indices (also inside "train_data", as the reference's record files), checked
    against the run's clients and training set."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--partition-file {path}: no such file")
    if file.suffix.lower() == ".json":
        clients = _clients_from_json(path)
    else:
        clients = _clients_from_parquet(path)
    return _checked(path, clients, num_clients, num_samples)


def _clients_from_parquet(path: str) -> dict[int, np.ndarray]:
    try:
        table = pq.read_table(path, columns=list(COLUMNS), use_threads=False)  # as read_metrics
        ids, samples = (np.asarray(table.column(c).to_numpy(), dtype=np.int64) for c in COLUMNS)
    except Exception as err:  # pyarrow raises many types for a bad file
        raise ConfigError(f"--partition-file {path}: not Parquet with integer columns {', '.join(COLUMNS)} nor "
                          f"a .json file ({type(err).__name__}: {one_line(err)})") from None
    order = np.argsort(ids, kind="stable")
    ids, samples = ids[order], samples[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
    return {int(ids[s]): part for s, part in zip(starts, np.split(samples, starts[1:]))}


def _clients_from_json(path: str) -> dict[int, np.ndarray]:
    try:
        raw = json.loads(Path(path).read_text())
        if isinstance(raw, dict) and isinstance(raw.get("train_data"), dict):
            raw = raw["train_data"]
        if not isinstance(raw, dict):
            raise ValueError("the top level is not an object")
        return {int(client): np.asarray(samples, dtype=np.int64).reshape(-1) for client, samples in raw.items()}
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"--partition-file {path}: not JSON mapping client id -> list of sample indices "
                          f"({type(err).__name__}: {one_line(err)})") from None


def _checked(path: str, clients: dict[int, np.ndarray], num_clients: int, num_samples: int) -> Partition:
    if len(clients) != num_clients:
        raise ConfigError(f"--partition-file {path}: holds {len(clients)} clients, but --clients is {num_clients}")
    if sorted(clients) != list(range(num_clients)):
        wrong = min(set(clients) - set(range(num_clients)))
        raise ConfigError(f"--partition-file {path}: client id {wrong} is not in 0..{num_clients - 1}")
    for client in range(num_clients):
        samples = clients[client]
        if len(samples) == 0:
            raise ConfigError(f"--partition-file {path}: client {client} holds no samples")
        if samples.min() < 0 or samples.max() >= num_samples:
            bad = int(samples.min() if samples.min() < 0 else samples.max())
            raise ConfigError(f"--partition-file {path}: client {client}: sample index {bad} is out of range: "
                              f"the training set has {num_samples} samples (0..{num_samples - 1})")
    return Partition.from_clients([clients[c] for c in range(num_clients)])
