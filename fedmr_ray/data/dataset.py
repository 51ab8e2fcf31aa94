"""A federated dataset: the samples stored once, and each client as a range of an index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FederatedDataset:
    """Client c's training samples are `client_index[client_offsets[c]:client_offsets[c + 1]]`
    (or that range of the arrays themselves when `client_index` is None). Put once into the Ray
    object store, its arrays are shared zero-copy by every executor on a node."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    client_offsets: np.ndarray
    num_classes: int
    client_index: np.ndarray | None = None

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
        return np.bincount(self.y_train[self.client_rows(client)], minlength=self.num_classes)

    def client_samples(self, client: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.client_rows(client)
        return self.x_train[rows], self.y_train[rows]
