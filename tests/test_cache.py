"""The dataset cache mends itself: a damaged entry is decoded and written again, with one warning."""

from __future__ import annotations

import numpy as np
import pytest

from datafiles import write_idx, write_leaf
from fedmr_ray.config import DataConfig, SimulationConfig
from fedmr_ray.data import load_dataset


@pytest.mark.parametrize(("name", "keep"), [("y_train", -7), ("x_train", -100), ("y_test", 40), ("x_test", 0)])
def test_a_truncated_cached_array_is_rebuilt_with_one_warning(tmp_path, capsys, name, keep):
    write_idx(tmp_path / "d", gz=False)
    config = SimulationConfig(clients=2, data=DataConfig(dataset="mnist", data_dir=str(tmp_path / "d"),
                                                         cache_dir=str(tmp_path / "cache"), partition="iid"))
    first = load_dataset(config)
    (entry,) = (tmp_path / "cache").iterdir()
    damaged = entry / f"{name}.npy"
    damaged.write_bytes(damaged.read_bytes()[:keep])
    capsys.readouterr()

    again = load_dataset(config)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"fedmr-ray: warning: the cached mnist in {entry} is damaged (")
    assert err.endswith("); decoding it again\n")
    for array in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(first, array), getattr(again, array)), array
    load_dataset(config)
    assert capsys.readouterr().err == ""  # mended: read from the cache again, no warning
    assert len(np.load(damaged, mmap_mode="r")) == len(first.x_train if name.endswith("train") else first.x_test)


def test_an_entry_of_an_older_format_is_decoded_again(tmp_path, monkeypatch):
    # entries of format 1 held LEAF's test split without its writers (test_users.npy): read as they
    # are, FEMNIST would test on every test writer's samples without a word
    from fedmr_ray.data import cache

    write_leaf(tmp_path / "d", {"f_a": 3, "f_b": 2}, test_writers={"f_a": 1, "f_z": 4})
    config = SimulationConfig(clients=2, data=DataConfig(dataset="femnist", data_dir=str(tmp_path / "d"),
                                                         cache_dir=str(tmp_path / "cache")))
    monkeypatch.setattr(cache, "ENTRY_VERSION", 1)
    load_dataset(config)
    (old,) = (tmp_path / "cache").iterdir()
    (old / "test_users.npy").unlink()
    assert len(load_dataset(config).y_test) == 5
    monkeypatch.undo()
    assert len(load_dataset(config).y_test) == 1  # f_a's: decoded again into an entry of its own
    assert len(list((tmp_path / "cache").iterdir())) == 2 and old.is_dir()
