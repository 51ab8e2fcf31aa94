"""The Flower peer's client: an importable module, so that Flower's actors import it (and keep
its cache of the data between calls) instead of receiving a by-value copy with each message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from flwr.client import NumPyClient

from benchmarks.plain_loop import client_batches, train_client
from fedmr_ray.config import SimulationConfig
from fedmr_ray.data import load_dataset
from fedmr_ray.models import ModelSpec

CONFIG_ENV = "FEDMR_FLOWER_CONFIG"
_cache: dict = {}


def workload() -> dict:
    """The data, model and rows, once per process (each of Flower's actors included)."""
    if not _cache:
        torch.set_num_threads(1)
        config = SimulationConfig.from_dict(json.loads(Path(os.environ[CONFIG_ENV]).read_text()))
        data = load_dataset(config).materialize()
        spec = ModelSpec(config.model, data.num_classes, data.input_shape)
        _cache.update(config=config, model=spec.build(), spec=spec, x=torch.from_numpy(data.x_train),
                      y=torch.from_numpy(data.y_train), rows=[data.client_rows(c) for c in range(data.num_clients)])
    return _cache


class Peer(NumPyClient):
    def fit(self, parameters, fit_config):
        w = workload()
        t, client, round_index = w["config"].train, int(fit_config["client"]), int(fit_config["round"])
        names = list(w["model"].state_dict())
        start = {name: torch.from_numpy(np.asarray(p)) for name, p in zip(names, parameters)}
        batches = client_batches(w["rows"][client], w["config"].seed, round_index, client, t.local_epochs,
                                 t.batch_size)
        state = train_client(w["model"], start, w["x"], w["y"], batches, t.lr, t.momentum)
        return [v.numpy() for v in state.values()], len(w["rows"][client]), {}
