"""Clustered sampling (Fraboni et al., ICML 2021), Algorithm 2, with FedAvg's local training.

Every client's representative update is its last local update (trained minus received model;
zero for a client that has not trained yet). Each round the clients are clustered by Ward
linkage on the Euclidean distances between these updates; the tree is cut into the largest
subtrees that hold at most 1/m of the data (m clients per round), the m heaviest of them each
open one of m sampling distributions, and the clients of the others fill the distributions up to
1/m each (a client may be split between two). One client is drawn from each distribution, with
probability proportional to its data, and the server averages the m updates uniformly.
"""

from __future__ import annotations

import numpy as np

from fedmr_ray.algorithms.base import AlgorithmContext, Sampling, ServerStep, uniform_weights
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.rng import Stream, generator
from fedmr_ray.train.hooks import LocalRule


class UpdateRule(LocalRule):
    client_state = ("update",)

    def finish(self, run) -> dict[str, list[np.ndarray]]:
        start = run.start_entries
        return {"update": [(now - before).cpu().numpy() for now, before in zip(run.entries(), start)]}


def cut_tree(merges: np.ndarray, weights: np.ndarray, cap: float) -> list[list[int]]:
    """The maximal subtrees of a linkage tree holding at most `cap` of the weight (a leaf that
    alone holds more is a cluster by itself)."""
    n = len(weights)
    children: dict[int, tuple[int, int]] = {}
    node_weight = list(weights)
    for i, (a, b) in enumerate(merges[:, :2].astype(int)):
        children[n + i] = (a, b)
        node_weight.append(node_weight[a] + node_weight[b])

    def leaves(node: int) -> list[int]:
        stack, out = [node], []
        while stack:
            v = stack.pop()
            if v < n:
                out.append(v)
            else:
                stack.extend(children[v])
        return out

    clusters, stack = [], [2 * n - 2]
    while stack:
        node = stack.pop()
        if node < n or node_weight[node] <= cap * (1 + 1e-9):
            clusters.append(sorted(leaves(node)))
        else:
            stack.extend(children[node])
    return clusters


def sampling_distributions(clusters: list[list[int]], weights: np.ndarray, m: int,
                           rng: np.random.Generator) -> np.ndarray:
    """[m, n]: the m heaviest clusters that fit in 1/m open the distributions; the clients of the
    other clusters, the lightest cluster first and shuffled within it, fill them in turn up to
    1/m each, a client split between two where it straddles. A client heavier than 1/m (the tree
    is cut above it) spans several. Every distribution ends up with 1/m of the weight, so that a
    client is drawn m x its share of the data times in expectation."""
    cap = 1.0 / m
    clusters = sorted(clusters, key=lambda c: weights[c].sum())
    fitting = [i for i, c in enumerate(clusters) if weights[c].sum() <= cap * (1 + 1e-9)]
    opened = fitting[-m:]
    rows = np.zeros((m, len(weights)))
    for row, i in enumerate(opened):
        rows[row, clusters[i]] = weights[clusters[i]]
    row = 0
    for i, cluster in enumerate(clusters):
        if i in opened:
            continue
        for client in rng.permutation(cluster):
            left = weights[client]
            while left > 1e-12 * cap and row < m:
                room = cap - rows[row].sum()
                if room <= 1e-12 * cap:
                    row += 1
                    continue
                rows[row, client] += min(room, left)
                left -= min(room, left)
    return rows / rows.sum(axis=1, keepdims=True)


def update_distances(states: list[list[np.ndarray]], clients: list[int], n: int) -> np.ndarray:
    """[n, n] Euclidean distances between the clients' updates (zero where a client has none),
    from their Gram matrix: one matrix product rather than n^2 differences."""
    dim = sum(entry.size for entry in states[0]) if states else 1
    updates = np.zeros((n, dim), dtype=np.float32)
    for client, state in zip(clients, states):
        updates[client] = np.concatenate([np.asarray(entry, dtype=np.float32).ravel() for entry in state])
    gram = (updates @ updates.T).astype(np.float64)
    squared = np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram
    distances = np.sqrt(np.maximum(squared, 0.0))
    np.fill_diagonal(distances, 0.0)
    return distances


def clustered_sample(states: list[list[np.ndarray]], clients: list[int], *, sizes: np.ndarray, cohort_size: int,
                     seed: int, round_index: int) -> np.ndarray:
    """Algorithm 2: the round's cohort, one client per sampling distribution."""
    rng = generator(seed, Stream.SAMPLE, round_index)
    n, m = len(sizes), cohort_size
    if n == 1:
        return np.zeros(m, dtype=np.int64)
    weights = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    from scipy.cluster.hierarchy import linkage  # here: scipy takes 0.4 s to import, and only CluSamp needs it
    from scipy.spatial.distance import squareform

    merges = linkage(squareform(update_distances(states, clients, n), checks=False), method="ward")

    rows = sampling_distributions(cut_tree(merges, weights, 1.0 / m), weights, m, rng)
    return np.array([rng.choice(n, p=row) for row in rows])


class CluSamp(FedAvg):
    local = UpdateRule()

    def __init__(self, sizes: np.ndarray, seed: int):
        self.sizes, self.seed = sizes, seed

    def sampling(self, round_index: int, cohort_size: int) -> Sampling:
        return Sampling(clustered_sample, "update", {"sizes": self.sizes, "cohort_size": cohort_size,
                                                    "seed": self.seed, "round_index": round_index})

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        return ServerStep(weights=uniform_weights(len(sizes)))


def make(ctx: AlgorithmContext) -> CluSamp:
    return CluSamp(ctx.client_sizes, ctx.seed)
