"""LEAF Synthetic(alpha, beta) (Li et al., FedProx, 2020), generated from the seed, client by client.

Client k: n_k = int(LogNormal(4, 2)) + 50 samples; u_k ~ N(0, alpha), B_k ~ N(0, beta);
W_k ~ N(u_k, 1) (60 x 10), b_k ~ N(u_k, 1); v_k ~ N(B_k, 1) (60); x ~ N(v_k, diag(j^-1.2));
y = argmax(x W_k + b_k). As in LEAF, each client keeps 90% for training and the other 10% joins
the common test set. A client's data depends only on (seed, k), never on the number of clients.
"""

from __future__ import annotations

import numpy as np

from fedmr_ray.data.dataset import FederatedDataset
from fedmr_ray.rng import Stream, generator

DIMENSION = 60
NUM_CLASSES = 10
TRAIN_FRACTION = 0.9
_STD_X = np.power(np.arange(1, DIMENSION + 1, dtype=np.float64), -1.2) ** 0.5


def _client_size(rng: np.random.Generator) -> int:
    """A client's sample count: the first draw of its generator."""
    return int(rng.lognormal(4, 2)) + 50


def synthetic_client(seed: int, client: int, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    rng = generator(seed, Stream.DATA, client)
    n = _client_size(rng)
    u = rng.normal(0, alpha)
    b_mean = rng.normal(0, beta)
    w = rng.normal(u, 1, (DIMENSION, NUM_CLASSES))
    b = rng.normal(u, 1, NUM_CLASSES)
    v = rng.normal(b_mean, 1, DIMENSION)
    x = v + rng.standard_normal((n, DIMENSION)) * _STD_X
    y = np.argmax(x @ w + b, axis=1)
    return x.astype(np.float32), y.astype(np.int64)


def synthetic_offsets(num_clients: int, seed: int) -> np.ndarray:
    """make_synthetic(num_clients, seed).client_offsets without generating the samples."""
    cuts = [int(TRAIN_FRACTION * _client_size(generator(seed, Stream.DATA, client))) for client in range(num_clients)]
    return np.concatenate([[0], np.cumsum(cuts)]).astype(np.int64)


def make_synthetic(num_clients: int, seed: int, alpha: float = 1.0, beta: float = 1.0) -> FederatedDataset:
    xs_train, ys_train, xs_test, ys_test = [], [], [], []
    offsets = np.zeros(num_clients + 1, dtype=np.int64)
    for client in range(num_clients):
        x, y = synthetic_client(seed, client, alpha, beta)
        cut = int(TRAIN_FRACTION * len(y))
        xs_train.append(x[:cut])
        ys_train.append(y[:cut])
        xs_test.append(x[cut:])
        ys_test.append(y[cut:])
        offsets[client + 1] = offsets[client] + cut
    return FederatedDataset(
        name="synthetic",
        x_train=np.concatenate(xs_train),
        y_train=np.concatenate(ys_train),
        x_test=np.concatenate(xs_test),
        y_test=np.concatenate(ys_test),
        client_offsets=offsets,
        num_classes=NUM_CLASSES,
    )
