"""LEAF Synthetic(alpha, beta) (Li et al., FedProx, 2020), generated from the seed, client by client.

Client k: n_k = int(LogNormal(4, 2)) + 50 samples; u_k ~ N(0, alpha), B_k ~ N(0, beta);
W_k ~ N(u_k, 1) (60 x 10), b_k ~ N(u_k, 1); v_k ~ N(B_k, 1) (60); x ~ N(v_k, diag(j^-1.2));
y = argmax(x W_k + b_k). As in LEAF, each client keeps 90% for training and the other 10% joins
the common test set. A client's data depends only on (seed, k), never on the number of clients.

With shared labels (`--synthetic-labels shared`), every client labels with one model W, b ~ N(0, 1)
drawn from the seed (the labelling of FedProx's Synthetic-IID) instead of its own W_k, b_k: the
clients' inputs still differ by beta, so their label mixes differ (label and feature skew), but
one global model fits every client, as in the image datasets; alpha then has no effect. The
clients' sizes and inputs are the same draws as under per-client labels.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from fedmr_ray.data.dataset import FederatedDataset
from fedmr_ray.rng import Stream, generator

DIMENSION = 60
NUM_CLASSES = 10
TRAIN_FRACTION = 0.9
# The common test set is every client's held-out 10% while that is at most this many samples
# (1,000 clients hold about 38,000); beyond, the held-out parts of clients drawn at random (from
# the seed) up to it: 100,000 clients' would be 4.5 million samples to evaluate on each time.
TEST_CAP = 50_000
TEST_DRAW = 1 << 40  # the key of the draw of test clients in the DATA stream (client ids are smaller)
SHARED_MODEL = TEST_DRAW + 1  # the key of the draw of the shared labelling model
_STD_X = np.power(np.arange(1, DIMENSION + 1, dtype=np.float64), -1.2) ** 0.5


def _client_size(rng: np.random.Generator) -> int:
    """A client's sample count: the first draw of its generator."""
    return int(rng.lognormal(4, 2)) + 50


def _sizes(seed: int, clients: range) -> np.ndarray:
    return np.array([_client_size(generator(seed, Stream.DATA, c)) for c in clients], dtype=np.int64)


# Below this many clients the sizes are drawn in this process; above, in processes of every CPU:
# a client's generator costs about 20 us to make (SeedSequence), 20 s for a million clients
PARALLEL_SIZES = 200_000


def client_sizes(num_clients: int, seed: int) -> np.ndarray:
    """Every client's sample count (each from its own generator: the same numbers however they
    are drawn), in processes of their own for many clients (forked: nothing to import)."""
    workers = min(os.cpu_count() or 1, 32)
    if num_clients < PARALLEL_SIZES or workers == 1 or "fork" not in mp.get_all_start_methods():
        return _sizes(seed, range(num_clients))
    bounds = np.linspace(0, num_clients, 4 * workers + 1).astype(int)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        parts = pool.map(_sizes, [seed] * (len(bounds) - 1), [range(a, b) for a, b in itertools.pairwise(bounds)])
        return np.concatenate(list(parts))


def synthetic_client(seed: int, client: int, alpha: float, beta: float,
                     shared: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = generator(seed, Stream.DATA, client)
    n = _client_size(rng)
    u = rng.normal(0, alpha)
    b_mean = rng.normal(0, beta)
    w = rng.normal(u, 1, (DIMENSION, NUM_CLASSES))
    b = rng.normal(u, 1, NUM_CLASSES)
    v = rng.normal(b_mean, 1, DIMENSION)
    if shared:  # after the client's own draws, so that its size and inputs stay the same
        common = generator(seed, Stream.DATA, SHARED_MODEL)
        w, b = common.normal(0, 1, (DIMENSION, NUM_CLASSES)), common.normal(0, 1, NUM_CLASSES)
    x = v + rng.standard_normal((n, DIMENSION)) * _STD_X
    y = np.argmax(x @ w + b, axis=1)
    return x.astype(np.float32), y.astype(np.int64)


@dataclass(frozen=True)
class SyntheticClients:
    """Client c's training samples (FederatedDataset.make_client), made from (seed, c) alone."""

    seed: int
    alpha: float
    beta: float
    shared: bool = True

    def __call__(self, client: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = synthetic_client(self.seed, client, self.alpha, self.beta, self.shared)
        cut = int(TRAIN_FRACTION * len(y))
        return x[:cut], y[:cut]


def generated_synthetic(num_clients: int, seed: int, alpha: float = 1.0, beta: float = 1.0,
                        shared: bool = True) -> FederatedDataset:
    """make_synthetic's dataset with the training samples made client by client when they train
    (the same samples), and the test set capped at TEST_CAP samples."""
    sizes = client_sizes(num_clients, seed)
    cuts = (TRAIN_FRACTION * sizes).astype(np.int64)
    held_out = sizes - cuts
    if held_out.sum() <= TEST_CAP:
        testers = np.arange(num_clients)
    else:
        order = generator(seed, Stream.DATA, TEST_DRAW).permutation(num_clients)
        testers = np.sort(order[:max(1, int(np.searchsorted(np.cumsum(held_out[order]), TEST_CAP, side="right")))])
    tests = [synthetic_client(seed, int(c), alpha, beta, shared) for c in testers]
    cut_of = dict(zip(testers.tolist(), cuts[testers].tolist()))
    return FederatedDataset(
        name="synthetic",
        x_train=np.zeros((0, DIMENSION), np.float32), y_train=np.zeros(0, np.int64),
        x_test=np.concatenate([x[cut_of[int(c)]:] for c, (x, _) in zip(testers, tests)]),
        y_test=np.concatenate([y[cut_of[int(c)]:] for c, (_, y) in zip(testers, tests)]),
        client_offsets=np.concatenate([[0], np.cumsum(cuts)]).astype(np.int64),
        num_classes=NUM_CLASSES,
        make_client=SyntheticClients(seed, alpha, beta, shared),
        # every client's held-out samples, in order, where the test set holds all of them
        client_test_offsets=np.concatenate([[0], np.cumsum(held_out)]).astype(np.int64)
        if len(testers) == num_clients else None,
    )


def synthetic_offsets(num_clients: int, seed: int) -> np.ndarray:
    """make_synthetic(num_clients, seed).client_offsets without generating the samples."""
    cuts = (TRAIN_FRACTION * client_sizes(num_clients, seed)).astype(np.int64)
    return np.concatenate([[0], np.cumsum(cuts)]).astype(np.int64)


def make_synthetic(num_clients: int, seed: int, alpha: float = 1.0, beta: float = 1.0,
                   shared: bool = True) -> FederatedDataset:
    xs_train, ys_train, xs_test, ys_test = [], [], [], []
    offsets = np.zeros(num_clients + 1, dtype=np.int64)
    for client in range(num_clients):
        x, y = synthetic_client(seed, client, alpha, beta, shared)
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
