"""A short FedMR run on real data (the LEAF FEMNIST sample: each writer a client) through
`fedmr_ray.simulate` on a local Ray, with the paper's FEMNIST CNN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from datafiles import SHARED_DATA, unpacked
from fedmr_ray import DataConfig, SimulationConfig, TrainConfig, simulate
from fedmr_ray.data import load_dataset
from fedmr_ray.data.partition import read_partition_file
from fedmr_ray.results import PARTITION, read_metrics

FEMNIST = SHARED_DATA / "femnist-leaf-niid-sample.tar.gz"


@pytest.mark.skipif(not FEMNIST.is_file(), reason="../shared/data is absent")
def test_fedmr_on_femnist_writers_through_ray(ray_local, tmp_path):
    root = unpacked(FEMNIST)
    config = SimulationConfig(
        clients=4, fraction=1.0, rounds=2, eval_every=1, seed=0, model="cnn-femnist", output=str(tmp_path / "run"),
        data=DataConfig(dataset="femnist", data_dir=str(root), cache_dir=str(tmp_path / "cache")),
        train=TrainConfig(local_epochs=2))
    history = simulate(config)

    assert [row["round"] for row in history] == [1, 2]
    assert all(row["stage"] == "recombine" and math.isfinite(row["train_loss"]) for row in history)
    # from about ln(62) (an untrained model over 62 classes) the test loss falls
    losses = [row["test_loss"] for row in history]
    assert losses[1] < losses[0] < math.log(62) + 0.1, losses
    assert read_metrics(tmp_path / "run") == history.rows

    # the run saved the partition it trained on: the first four writers, whole
    data = load_dataset(config)
    saved = read_partition_file(str(tmp_path / "run" / PARTITION), 4, len(data.y_train))
    assert np.array_equal(saved.offsets, data.client_offsets) and data.client_index is None
    assert saved.sizes().tolist() == data.client_sizes().tolist() and saved.sizes().min() > 50
