"""The overhead benchmark's workload through Flower's simulation engine (run with a Python that
has flwr[simulation], e.g. a separate venv: see benchmarks/RESULTS.md).

    python benchmarks/flower_peer.py --config CONFIG.json [--cores N]

FedAvg over the same cohorts as fedmr-ray (a strategy that hands each sampled virtual client the
fedmr-ray cohort's client to train), the clients running benchmarks/plain_loop.py's code with
one thread each, one client per CPU. Prints the median seconds per round after the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Flower's actors are processes of their own: they find benchmarks/ through this
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from benchmarks.flower_client import CONFIG_ENV, Peer, workload  # noqa: E402
from fedmr_ray.federation import sample_cohort  # noqa: E402
from fedmr_ray.models import initial_state  # noqa: E402


def main() -> None:
    from flwr.client import ClientApp
    from flwr.common import FitIns, ndarrays_to_parameters
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.simulation import run_simulation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    w = workload()
    config = w["config"]
    marks: list[float] = []

    class CohortFedAvg(FedAvg):
        """FedAvg whose r-th round trains fedmr-ray's r-th cohort."""

        def configure_fit(self, server_round, parameters, client_manager):
            cohort = sample_cohort(config.seed, server_round - 1, config.clients, config.cohort_size)
            proxies = client_manager.sample(num_clients=len(cohort), min_num_clients=len(cohort))
            return [(proxy, FitIns(parameters, {"client": int(c), "round": server_round - 1}))
                    for proxy, c in zip(proxies, cohort)]

        def aggregate_fit(self, server_round, results, failures):
            if failures:
                raise RuntimeError(f"{len(failures)} Flower clients failed")
            out = super().aggregate_fit(server_round, results, failures)
            marks.append(time.perf_counter())
            return out

    initial = ndarrays_to_parameters(initial_state(w["spec"], config.seed))
    strategy = CohortFedAvg(fraction_evaluate=0.0, min_available_clients=config.clients, initial_parameters=initial)
    server = ServerApp(server_fn=lambda context: ServerAppComponents(
        strategy=strategy, config=ServerConfig(num_rounds=config.rounds)))
    client = ClientApp(client_fn=lambda context: Peer().to_client())
    run_simulation(server_app=server, client_app=client, num_supernodes=config.clients, backend_config={
        "client_resources": {"num_cpus": 1.0, "num_gpus": 0.0},
        "init_args": {"num_cpus": args.cores, "include_dashboard": False, "logging_level": "ERROR"}})
    print(statistics.median(b - a for a, b in zip(marks, marks[1:])))


if __name__ == "__main__":
    main()
