"""The trainer's 2x2 max-pooling (fedmr_ray/models/maxpool.py) against torch's, one thread.

    python -m benchmarks.maxpool [--rounds 6] [--repeats 7]

1. Forward and backward of one pooling, torch's F.max_pool2d and max_pool2x2 taking turns on the
   same input (a ReLU's output), the median of `--repeats` timings of 5 to 50 calls each, for the
   28x28 cnns' and vgg16's pooling inputs at batch 50.
2. Local training of the Fashion-MNIST overhead workload (benchmarks/overhead.py: 100 clients a
   round, 1 epoch, batch 50) by two ClientTrainers in this process, one with torch's pools put
   back, rounds taking turns; the median of the round-by-round ratios, and a check that both
   gave the same entries and losses.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.overhead import workload
from fedmr_ray.data import load_dataset
from fedmr_ray.federation import sample_cohort
from fedmr_ray.models import ModelSpec, initial_state
from fedmr_ray.models.maxpool import FastMaxPool2d, max_pool2x2
from fedmr_ray.train import ClientTrainer, TrainJob

SHAPES = {"cnn pool 1": (50, 6, 24, 24), "cnn pool 2": (50, 16, 8, 8), "cnn-femnist pool 1": (50, 16, 24, 24),
          "cnn-femnist pool 2": (50, 32, 8, 8), "vgg16 pool 1": (50, 64, 32, 32), "vgg16 pool 3": (50, 256, 8, 8)}


def pooling(repeats: int) -> None:
    print(f"{'input':20} {'shape':>18} {'torch ms':>9} {'fast ms':>8} {'ratio':>6}")
    for name, shape in SHAPES.items():
        x = torch.relu(torch.randn(shape, generator=torch.Generator().manual_seed(0))).requires_grad_(True)

        calls = min(max(10_000_000 // x.numel(), 5), 50)

        def timed(pool) -> float:
            start = time.perf_counter()
            for _ in range(calls):
                out = pool(x)
                out.backward(torch.ones_like(out))
            return (time.perf_counter() - start) / calls * 1e3

        times = {"torch": [], "fast": []}
        for _ in range(repeats):
            times["torch"].append(timed(lambda v: F.max_pool2d(v, 2)))
            times["fast"].append(timed(max_pool2x2))
        ours, theirs = statistics.median(times["fast"]), statistics.median(times["torch"])
        print(f"{name:20} {str(list(shape)):>18} {theirs:9.3f} {ours:8.3f} {ours / theirs:6.2f}")


def training(model: str, rounds: int) -> None:
    config = workload("fmnist", 1, rounds, 1)
    data = load_dataset(config).materialize()
    spec = ModelSpec(model, data.num_classes, data.input_shape)
    start = initial_state(spec, config.seed)
    fast, plain = (ClientTrainer(spec, data, config.train, config.seed) for _ in range(2))
    assert isinstance(fast.model.pool, FastMaxPool2d)
    plain.model.pool = nn.MaxPool2d(2)
    times: dict[str, list[float]] = {"torch": [], "fast": []}
    for r in range(rounds):
        cohort = sample_cohort(config.seed, r, config.clients, config.cohort_size).tolist()
        jobs = [TrainJob(i, c, r) for i, c in enumerate(cohort)]
        out = {}
        for name, trainer in (("torch", plain), ("fast", fast)) if r % 2 else (("fast", fast), ("torch", plain)):
            begun = time.perf_counter()
            out[name] = trainer.train_many(jobs, [start] * len(jobs))
            times[name].append(time.perf_counter() - begun)
        same = all(a.result == b.result and all(np.array_equal(u, v) for u, v in zip(a.entries, b.entries))
                   for a, b in zip(out["fast"], out["torch"]))
        if not same:
            raise SystemExit(f"round {r}: the fast pools gave other numbers than torch's")
    ratios = [f / t for f, t in zip(times["fast"][1:], times["torch"][1:])]  # round 0 warms up
    print(f"{model:12} rounds 2-{rounds}: torch's pools {statistics.median(times['torch'][1:]):.3f} s/round, "
          f"fast {statistics.median(times['fast'][1:]):.3f}; round by round fast / torch: median "
          f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}); the same numbers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"one thread; {time.strftime('%Y-%m-%d %H:%M')}")
    pooling(args.repeats)
    print("local training, fmnist, 100 clients a round, 1 epoch, batch 50, one trainer each:")
    for model in ("cnn", "cnn-femnist"):
        training(model, args.rounds)


if __name__ == "__main__":
    main()
