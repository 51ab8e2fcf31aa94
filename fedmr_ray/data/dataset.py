"""A federated dataset: the samples stored once, and each client as a range of an index; or,
for data generated client by client, only the clients' sizes, each client made when it trains."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# A generated client's (x, y) training samples, from its id alone.
ClientMaker = Callable[[int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FederatedDataset:
    """Client c's training samples are `client_index[client_offsets[c]:client_offsets[c + 1]]`
    (or that range of the arrays themselves when `client_index` is None). Put once into the Ray
    object store, its arrays are shared zero-copy by every executor on a node.

    With `make_client`, the training arrays are empty and client c's samples are
    make_client(c), made where and when it trains: a client costs its size and nothing more
    until then, so that a run of 100,000 clients holds no more than one of 1,000."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    client_offsets: np.ndarray
    num_classes: int
    client_index: np.ndarray | None = None
    make_client: ClientMaker | None = None
    # where each client has test samples of its own (synthetic's held-out 10%): client c's are
    # x_test[client_test_offsets[c]:client_test_offsets[c + 1]]
    client_test_offsets: np.ndarray | None = None
    # each client's held-out split for per-client evaluation (holdout.py): client c's are the rows
    # client_holdout[1][client_holdout[0][c]:client_holdout[0][c + 1]] of x_test / y_test
    client_holdout: tuple[np.ndarray, np.ndarray] | None = None
    # images: the model input of a black pixel, per channel (-mean / std of its normalisation),
    # which augmentation pads with
    black: tuple[float, ...] = (-1.0,)

    @property
    def train_samples(self) -> int:
        return int(self.client_offsets[-1])

    def client_arrays(self, clients: Sequence[int]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(x, y, rows): arrays holding these clients' training samples and each client's rows in
        them: the dataset's own arrays for stored data, the clients made and joined for generated."""
        if self.make_client is None:
            return self.x_train, self.y_train, [self.client_rows(c) for c in clients]
        made = [self.make_client(int(c)) for c in clients]
        bounds = np.concatenate([[0], np.cumsum([len(y) for _, y in made])])
        rows = [np.arange(a, b) for a, b in zip(bounds, bounds[1:])]
        if not made:
            return self.x_train, self.y_train, rows
        return np.concatenate([x for x, _ in made]), np.concatenate([y for _, y in made]), rows

    def materialize(self) -> FederatedDataset:
        """The same dataset with every client's samples stored (generated ones made now)."""
        if self.make_client is None:
            return self
        x, y, _ = self.client_arrays(range(self.num_clients))
        return dataclasses.replace(self, x_train=x, y_train=y, make_client=None)

    @property
    def num_clients(self) -> int:
        return len(self.client_offsets) - 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def client_sizes(self) -> np.ndarray:
        return np.diff(self.client_offsets)

    def client_rows(self, client: int) -> np.ndarray:
        """The client's training samples as row numbers of x_train / y_train."""
        start, stop = int(self.client_offsets[client]), int(self.client_offsets[client + 1])
        if self.client_index is None:
            return np.arange(start, stop)
        return self.client_index[start:stop]

    def label_counts(self, client: int) -> np.ndarray:
        _, y, (rows,) = self.client_arrays([client])
        return np.bincount(y[rows], minlength=self.num_classes)

    def cohort_label_counts(self, clients: Sequence[int]) -> np.ndarray:
        """[clients, classes]: how many samples of each class each of these clients holds."""
        return np.stack([self.label_counts(int(c)) for c in clients])

    def client_samples(self, client: int) -> tuple[np.ndarray, np.ndarray]:
        x, y, (rows,) = self.client_arrays([client])
        return x[rows], y[rows]
