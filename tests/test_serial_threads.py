"""--serial trains with an executor's torch threads (RuntimeConfig.threads), so that it computes what
a run on Ray computes; the process's own setting comes back after."""

from __future__ import annotations

import torch

from fedmr_ray import simulate
from fedmr_ray.config import RuntimeConfig, SimulationConfig, TrainConfig


def test_a_serial_run_trains_with_an_executors_threads():
    config = SimulationConfig(clients=10, fraction=0.2, rounds=2, eval_every=1, train=TrainConfig(local_epochs=1),
                              runtime=RuntimeConfig(cpus_per_actor=2))
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    seen = []
    try:
        simulate(config, serial=True, on_round=lambda record, elapsed: seen.append(torch.get_num_threads()))
        assert seen == [config.runtime.threads] * 2 == [2, 2]
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
