"""Each client's held-out split, for evaluating models client by client (--client-eval-every).

Where the data gives clients test samples of their own (LEAF Synthetic's held-out 10% of each
client), those. Elsewhere the partitioned datasets have one common test set, and a client's split
is drawn from it to the client's own label mix: as many samples as the test set holds per
training sample (CIFAR-10: one per five), at least one, each class in proportion to the client's
training labels (largest remainders), drawn without replacement within the client from (seed,
client). The training data is never touched: the numbers of a run do not change.
"""

from __future__ import annotations

import numpy as np

from fedmr_ray.data.dataset import FederatedDataset
from fedmr_ray.rng import Stream, generator

HOLDOUT_KEY = 1 << 41  # the key of these draws in the PARTITION stream (client ids are smaller)


def client_holdout(data: FederatedDataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, rows): client c's held-out samples are x_test[rows[offsets[c]:offsets[c + 1]]]."""
    if data.client_test_offsets is not None:
        return data.client_test_offsets, np.arange(len(data.y_test))
    counts = data.cohort_label_counts(range(data.num_clients))
    by_class = [np.flatnonzero(data.y_test == label) for label in range(data.num_classes)]
    per_sample = len(data.y_test) / max(data.train_samples, 1)
    rows, sizes = [], []
    for client, mine in enumerate(counts):
        size = max(1, round(mine.sum() * per_sample))
        quota = _apportion(mine, size)
        rng = generator(seed, Stream.PARTITION, HOLDOUT_KEY, client)
        taken = [rng.choice(by_class[label], quota[label], replace=quota[label] > len(by_class[label]))
                 for label in np.flatnonzero(quota) if len(by_class[label])]
        rows += taken
        sizes.append(sum(len(t) for t in taken))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return offsets, np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)


def _apportion(counts: np.ndarray, size: int) -> np.ndarray:
    """`size` split among the classes in proportion to `counts`, by largest remainders."""
    exact = counts * size / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(-(exact - quota), kind="stable")[:size - quota.sum()]] += 1
    return quota
