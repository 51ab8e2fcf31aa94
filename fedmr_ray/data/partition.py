"""Which training samples each client holds: iid, dirichlet (label skew), shards, or the dataset's
own users, computed from the labels and a seeded generator; or read from a file (Parquet, or the
reference's JSON of client id -> sample indices).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fedmr_ray.errors import ConfigError, one_line

MAX_DIRICHLET_DRAWS = 1000
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


def shard_partition(labels: np.ndarray, num_clients: int, shards_per_client: int,
                    rng: np.random.Generator) -> Partition:
    """McMahan et al.'s pathological non-IID split, as the reference's noniid cases: the samples
    sorted by label, cut into clients x shards_per_client equal shards, each client given
    shards_per_client of them at random; the remainder goes unused."""
    count = num_clients * shards_per_client
    size = len(labels) // count
    by_label = np.argsort(labels, kind="stable")
    shards = rng.permutation(count).reshape(num_clients, shards_per_client)
    rows = (shards[:, :, None] * size + np.arange(size)).reshape(num_clients, -1)
    return Partition(np.arange(num_clients + 1, dtype=np.int64) * rows.shape[1], by_label[rows.ravel()].astype(np.int64))


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
