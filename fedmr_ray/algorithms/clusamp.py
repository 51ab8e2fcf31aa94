"""Clustered sampling (Fraboni et al., ICML 2021), Algorithm 2, with FedAvg's local training; by
default as the reference ran it (main_fed.py's ClusteredSampling, utils/clustering.py).

Each round the clients are clustered by Ward linkage; the tree is cut into the largest subtrees
that hold at most 1/m of the data (m clients per round), the m heaviest of them each open one of m
sampling distributions, and the clients of the others fill the distributions up to 1/m each (a
client may be split between two). One client is drawn from each distribution, with probability
proportional to its data. What is clustered, and how the m trained models are averaged, is the
`clusamp_variant`:

- reference (the default): the server keeps an n x n matrix of L1 distances between the clients'
  representative updates (trained minus received model, parameters only), zero at the start. After
  a round it sets entry [i, j] for each of the round's clients i and only the round's last client
  j: the reference's get_matrix_similarity_from_grads_new writes after its inner loop, an
  indentation slip that its compiled modules (Python 3.7 to 3.12, 2023-2024: those its numbers
  came from) have too. Ward linkage is given the matrix itself, which scipy takes as n
  observations of n features: clients are clustered by the Euclidean distances between their
  rows. The server takes the sample-weighted mean (the reference's Aggregation).
- reference-fixed: the same, every pair of the round's clients set, as the reference means to.
- paper: every client's last update (all state entries; zero before it trains), Ward linkage on
  the Euclidean distances between them, and the unweighted mean, Fraboni et al.'s unbiased
  aggregation.

A client drawn twice in a round counts with its last update, as in the reference.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from fedmr_ray.algorithms.base import AlgorithmContext, Sampling, ServerStep, ServerTask, uniform_weights
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.config import Settings as Base
from fedmr_ray.config import setting
from fedmr_ray.rng import Stream, generator
from fedmr_ray.train.hooks import LocalRule

VARIANTS = ("reference", "reference-fixed", "paper")


@dataclass(frozen=True)
class Settings(Base):
    clusamp_variant: str = setting(
        "reference", "CluSamp: reference (as the reference ran it: Ward linkage on a matrix of L1 distances between "
        "parameter updates, only the round's clients against its last one updated each round; sample-weighted "
        "mean), reference-fixed (every pair of the round's clients updated) or paper (Fraboni et al.: Euclidean "
        "distances between every client's last update; unweighted mean).",
        check=lambda v: v in VARIANTS, must="reference, reference-fixed or paper")


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


def draw_cohort(observations: np.ndarray, *, sizes: np.ndarray, cohort_size: int, seed: int,
                round_index: int) -> np.ndarray:
    """Algorithm 2 on a Ward linkage of `observations`, as scipy's linkage takes them (a condensed
    distance matrix, or one row per client): the round's cohort, one client per distribution."""
    rng = generator(seed, Stream.SAMPLE, round_index)
    n, m = len(sizes), cohort_size
    if n == 1:
        return np.zeros(m, dtype=np.int64)
    weights = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    from scipy.cluster.hierarchy import ClusterWarning, linkage  # here: scipy takes 0.4 s to import

    with warnings.catch_warnings():  # a symmetric matrix given as observations, as the reference gives it
        warnings.simplefilter("ignore", ClusterWarning)
        merges = linkage(observations, method="ward")
    rows = sampling_distributions(cut_tree(merges, weights, 1.0 / m), weights, m, rng)
    return np.array([rng.choice(n, p=row) for row in rows])


def clustered_sample(states: list[list[np.ndarray]], clients: list[int], *, sizes: np.ndarray, **kwargs) -> np.ndarray:
    """The paper variant's cohort: Ward linkage on the distances between the clients' last updates."""
    from scipy.spatial.distance import squareform

    distances = squareform(update_distances(states, clients, len(sizes)), checks=False)
    return draw_cohort(distances, sizes=sizes, **kwargs)


def similarity_sample(inputs: list[list[np.ndarray]], **kwargs) -> np.ndarray:
    """The reference's cohort: Ward linkage on its similarity matrix (inputs[0][0]) as observations."""
    return draw_cohort(inputs[0][0], **kwargs)


def l1_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(sum(np.abs(x - y).sum(dtype=np.float64) for x, y in zip(a, b, strict=True)))


def update_similarity(state: list[np.ndarray], inputs: list[list[np.ndarray]], *, cohort: np.ndarray,
                      every_pair: bool) -> list[np.ndarray]:
    """The reference's similarity matrix (state[0]) after a round, inputs[j] the parameters slot j
    trained. The round's clients all started from one model, so the L1 distance between two trained
    models is that between their updates. Entries [i, last] for the round's clients i (the
    reference's slip), or every [i, j], i != j, of the round's clients."""
    matrix = np.array(state[0], dtype=np.float64)  # a copy: the state may be read-only (the object store)
    clients = [int(c) for c in cohort]
    slot = {client: j for j, client in enumerate(clients)}  # a client drawn twice: its last update
    pairs = [(i, j) for i in clients for j in clients if i != j] if every_pair else [(i, clients[-1]) for i in clients]
    distances: dict[tuple[int, int], float] = {}
    for i, j in pairs:
        key = (min(i, j), max(i, j))
        if key not in distances:
            distances[key] = l1_distance(inputs[slot[i]], inputs[slot[j]])
        matrix[i, j] = distances[key]
    return [matrix]


class CluSamp(FedAvg):
    def __init__(self, sizes: np.ndarray, seed: int, variant: str, param_entries: tuple[int, ...]):
        self.sizes, self.seed, self.variant, self.param_entries = sizes, seed, variant, param_entries
        self.local = UpdateRule() if variant == "paper" else None

    def initial_server_state(self) -> dict[str, list[np.ndarray]]:
        n = len(self.sizes)
        return {} if self.variant == "paper" else {"similarity": [np.zeros((n, n))]}

    def sampling(self, round_index: int, cohort_size: int) -> Sampling:
        kwargs = {"sizes": self.sizes, "cohort_size": cohort_size, "seed": self.seed, "round_index": round_index}
        if self.variant == "paper":
            return Sampling(clustered_sample, "update", kwargs)
        return Sampling(similarity_sample, "similarity", kwargs, server=True)

    def server_step(self, round_index: int, sizes: np.ndarray, rng: np.random.Generator) -> ServerStep:
        if self.variant == "paper":
            return ServerStep(weights=uniform_weights(len(sizes)))
        return super().server_step(round_index, sizes, rng)

    def server_task(self, round_index: int, cohort: np.ndarray) -> ServerTask | None:
        if self.variant == "paper":
            return None
        return ServerTask(update_similarity, "similarity", self.param_entries,
                          {"cohort": np.asarray(cohort), "every_pair": self.variant == "reference-fixed"})


def make(ctx: AlgorithmContext) -> CluSamp:
    return CluSamp(ctx.client_sizes, ctx.seed, ctx.settings.clusamp_variant, ctx.info.param_entries)
