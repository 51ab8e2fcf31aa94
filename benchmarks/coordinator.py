"""What passes through the coordinator in a FedMR (or FedMut) round, from the smallest model to vgg16.

    python -m benchmarks.coordinator [--cifar10 DIR] [--algorithms fedmr fedmut]

K = 10 models, two rounds (the second recombines: stage two) of tiny clients (one local step
each), on a local Ray. After the second round the coordinator reports where the objects the
round's training returned live (per executor call, one object per entry of 1 MB or more and one
holding all smaller entries: fedmr_ray/runtime/entries.py): returned inline to it (their bytes
passed through its process; Ray inlines objects up to 100 KB by default) or left in the object
store (only refs pass); the same of the objects holding the server's models and state after
its step (FedMut's: the mutated models' combinations, made by the executors). Also the time the
coordinator spent on the server step (drawing permutations and recombining refs; FedMut's
combinations included).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import ray

from fedmr_ray import AlgorithmConfig, DataConfig, RuntimeConfig, SimulationConfig, TrainConfig
from fedmr_ray.runtime.driver import RayRun, ray_cluster
from fedmr_ray.setup import prepare


def measure(model: str, data: DataConfig, clients: int, algorithm: str) -> dict:
    # three rounds, of which two run: the last would evaluate (vgg16 on CIFAR-10's test set: minutes)
    setup = prepare(SimulationConfig(clients=clients, fraction=10 / clients, rounds=3, eval_every=10**6, model=model,
                                     data=data, train=TrainConfig(local_epochs=1, batch_size=50),
                                     algorithm=AlgorithmConfig(algorithm), runtime=RuntimeConfig(num_actors=2)))
    with ray_cluster(None):
        run = RayRun(setup)
        summary = run.describe()
        run.step()
        second = run.step()
        where = ray.get(run.coordinator.traffic.remote())
    shapes = [shape for _, shape in summary["entries"]]
    params = sum(math.prod(s) for s in shapes)
    return {"algorithm": algorithm, "model": model, "params": params, "entries": len(shapes),
            "server_s": second.server_s, **where}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar10", default=os.environ.get("FEDMR_CIFAR10", "/work/data/cifar10"))
    parser.add_argument("--algorithms", nargs="+", default=["fedmr"], choices=["fedmr", "fedmut"])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn", "resnet20", "vgg16"])
    args = parser.parse_args()
    cifar = DataConfig(dataset="cifar10", data_dir=args.cifar10, partition="iid")
    cases = {"mlp": (DataConfig(), 100), "cnn": (cifar, 2000), "resnet20": (cifar, 2000), "vgg16": (cifar, 2000)}
    rows = [measure(model, *cases[model], algorithm) for algorithm in args.algorithms for model in args.models]
    print(f"K = 10, round 2; objects the training returned / objects holding the server's models and state "
          f"after its step; {time.strftime('%Y-%m-%d %H:%M')}")
    print("| algorithm | model | parameters | entries | objects | inline: objects | bytes | largest | in the object "
          "store: objects | bytes | server step |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for kind in ("trained", "kept"):
            w = r[kind]
            print(f"| {r['algorithm']} | {r['model']} | {r['params']:,} | {r['entries']} | {kind} | {w['inline_objects']} | "
                  f"{w['inline_bytes']:,} | {w['largest_inline']:,} | {w['stored_objects']} | {w['stored_bytes']:,} | "
                  f"{1e3 * r['server_s']:.2f} ms |")


if __name__ == "__main__":
    main()
