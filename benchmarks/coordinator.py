"""What passes through the coordinator in a FedMR round, from the smallest model to vgg16.

    python -m benchmarks.coordinator [--cifar10 DIR]

FedMR, K = 10 models, two rounds (the second recombines: stage two) of tiny clients (one local
step each), on a local Ray. After the second round the coordinator reports where the objects the
round's training returned live (per executor call, one object per entry of 1 MB or more and one
holding all smaller entries: fedmr_ray/runtime/entries.py): returned inline to it (their bytes
passed through its process; Ray inlines objects up to 100 KB by default) or left in the object
store (only refs pass). Also the time the coordinator spent on the server step (drawing
permutations, recombining refs).
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


def measure(model: str, data: DataConfig, clients: int) -> dict:
    # three rounds, of which two run: the last would evaluate (vgg16 on CIFAR-10's test set: minutes)
    setup = prepare(SimulationConfig(clients=clients, fraction=10 / clients, rounds=3, eval_every=10**6, model=model,
                                     data=data, train=TrainConfig(local_epochs=1, batch_size=50),
                                     algorithm=AlgorithmConfig("fedmr"), runtime=RuntimeConfig(num_actors=2)))
    with ray_cluster(None):
        run = RayRun(setup)
        summary = run.describe()
        run.step()
        second = run.step()
        where = ray.get(run.coordinator.traffic.remote())
    shapes = [shape for _, shape in summary["entries"]]
    params = sum(math.prod(s) for s in shapes)
    return {"model": model, "params": params, "entries": len(shapes), "server_s": second.server_s, **where}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar10", default=os.environ.get("FEDMR_CIFAR10", "/work/data/cifar10"))
    args = parser.parse_args()
    cifar = DataConfig(dataset="cifar10", data_dir=args.cifar10, partition="iid")
    cases = [("mlp", DataConfig(), 100), ("cnn", cifar, 2000), ("resnet20", cifar, 2000), ("vgg16", cifar, 2000)]
    rows = [measure(model, data, clients) for model, data, clients in cases]
    print(f"FedMR, K = 10, round 2 (recombination); {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'model':9} {'params':>11} {'entries':>7} {'inline: objects':>16} {'bytes':>10} {'largest':>8} "
          f"{'in store: objects':>18} {'bytes':>12} {'server step ms':>15}")
    for r in rows:
        print(f"{r['model']:9} {r['params']:11,} {r['entries']:7} {r['inline_objects']:16} {r['inline_bytes']:10,} "
              f"{r['largest_inline']:8,} {r['stored_objects']:18} {r['stored_bytes']:12,} {1e3 * r['server_s']:15.2f}")


if __name__ == "__main__":
    main()
