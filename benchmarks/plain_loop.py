"""Local training as a textbook PyTorch loop, no Ray and no fedmr-ray runtime: the baseline that
benchmarks measure fedmr-ray against, and what the Flower peer's clients run.

The loop trains the same steps as fedmr-ray (the same per-epoch shuffles of a client's rows,
batch by batch, SGD with momentum, a fresh optimizer per client and round), with
torch.optim.SGD and autograd, one client after another.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

TRAIN_STREAM = 4  # fedmr_ray.rng.Stream.TRAIN: the same shuffles as fedmr-ray's


def client_batches(rows: np.ndarray, seed: int, round_index: int, client: int, epochs: int,
                   batch_size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, TRAIN_STREAM, round_index, client]))
    batches = []
    for _ in range(epochs):
        order = rows[rng.permutation(len(rows))]
        batches += [order[start:start + batch_size] for start in range(0, len(rows), batch_size)]
    return batches


def train_client(model: torch.nn.Module, start: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                 batches: list[np.ndarray], lr: float, momentum: float) -> dict[str, torch.Tensor]:
    model.load_state_dict(start)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for rows in batches:
        index = torch.from_numpy(rows)
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def fedavg(states: list[dict[str, torch.Tensor]], sizes: list[int]) -> dict[str, torch.Tensor]:
    weights = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    return {name: sum(float(w) * s[name].double() for w, s in zip(weights, states)).to(states[0][name].dtype)
            for name in states[0]}


def train_round(model: torch.nn.Module, state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                client_rows: list[np.ndarray], cohort: list[int], seed: int, round_index: int, epochs: int,
                batch_size: int, lr: float, momentum: float) -> dict[str, torch.Tensor]:
    """One FedAvg round over the cohort's clients, one after another."""
    trained = [train_client(model, state, x, y,
                            client_batches(client_rows[c], seed, round_index, c, epochs, batch_size), lr, momentum)
               for c in cohort]
    return fedavg(trained, [len(client_rows[c]) for c in cohort])
