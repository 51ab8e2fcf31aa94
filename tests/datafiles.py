"""Tiny datasets written in the real on-disk formats, for the data tests; and where the real
ones live on this machine."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TEST_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fedmr-ray-tests"


def pixels(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8)


def write_cifar10_batches(root: Path, per_batch: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """cifar-10-batches-py/ with five training batches and a test batch; returns the training
    (pixels NCHW, labels) in file order."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        x, y = pixels(rng, per_batch, (3, 32, 32)), rng.integers(0, 10, per_batch)
        with (folder / name).open("wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": x.reshape(per_batch, -1),
                         b"labels": y.tolist()}, f)
        if name != "test_batch":
            xs.append(x)
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def write_cifar100(root: Path, n: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    """cifar-100-python/ train and test; returns the training fine and coarse labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    labels = {}
    for name in ("train", "test"):
        fine = rng.integers(0, 100, n)
        coarse = fine // 5
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": pixels(rng, n, (3, 32, 32)).reshape(n, -1), b"fine_labels": fine.tolist(),
                         b"coarse_labels": coarse.tolist()}, f)
        if name == "train":
            labels = {"fine": fine, "coarse": coarse}
    return labels


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(root: Path, n_train: int = 40, n_test: int = 10, gz: bool = True, seed: int = 0,
              train_labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The four MNIST IDX files; returns the training (images [N, 28, 28], labels)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    x_train, x_test = pixels(rng, n_train, (28, 28)), pixels(rng, n_test, (28, 28))
    y_train = rng.integers(0, 10, n_train) if train_labels is None else train_labels
    arrays = {"train-images-idx3-ubyte": x_train, "train-labels-idx1-ubyte": y_train,
              "t10k-images-idx3-ubyte": x_test, "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for name, array in arrays.items():
        data = idx_bytes(array)
        (root / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data) if gz else data)
    return x_train, y_train


def write_leaf(root: Path, writers: dict[str, int], test_writers: dict[str, int] | None = None,
               seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """LEAF FEMNIST JSON in root/train and root/test, two writers per file; returns each training
    writer's (x [n, 784] values in [0, 1] in 1/255 steps, y)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, sizes in (("train", writers), ("test", test_writers or {w: 2 for w in writers})):
        (root / split).mkdir(parents=True)
        names = list(sizes)
        for part in range(0, len(names), 2):
            users = names[part:part + 2]
            data = {}
            for user in users:
                x = rng.integers(0, 256, (sizes[user], 784)) / 255
                y = rng.integers(0, 62, sizes[user])
                data[user] = {"x": x.tolist(), "y": y.tolist()}
                if split == "train":
                    out[user] = (x, y)
            record = {"users": users, "num_samples": [sizes[u] for u in users], "user_data": data}
            (root / split / f"all_data_{part}_niid_05_keep_0_{split}_9.json").write_text(json.dumps(record))
    return out


SPEECH = ("To be, or not to be: that is the question: Whether 'tis nobler in the mind to suffer The slings "
          "and arrows of outrageous fortune, Or to take arms against a sea of troubles, And by opposing end them?\n")


def write_leaf_text(root: Path, writers: dict[str, int], test_writers: dict[str, int] | None = None,
                    seed: int = 0) -> dict[str, tuple[list[str], list[str]]]:
    """LEAF Shakespeare JSON in root/train and root/test, one writer per file: each sample 80
    characters of a speech from a random place, its label the character after them; returns each
    training writer's (lines, next characters)."""
    rng = np.random.default_rng(seed)
    text = SPEECH * 3
    out = {}
    for split, sizes in (("train", writers), ("test", test_writers or {w: 2 for w in writers})):
        (root / split).mkdir(parents=True)
        for part, (user, size) in enumerate(sizes.items()):
            starts = rng.integers(0, len(SPEECH), size)
            x, y = [text[s:s + 80] for s in starts], [text[s + 80] for s in starts]
            record = {"users": [user], "num_samples": [size], "hierarchies": ["play"], "user_data": {user: {"x": x, "y": y}}}
            (root / split / f"all_data_niid_{part}_keep_0_{split}_9.json").write_text(json.dumps(record))
            if split == "train":
                out[user] = (x, y)
    return out


def write_image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 3,
                       seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(pixels(rng, 1, (32, 32, 3))[0]).save(root / split / name / f"{i:04d}.png")


def extract(archive: Path, into: Path) -> None:
    into.mkdir(parents=True)
    if shutil.which("tar"):  # several times faster than tarfile on CIFAR's 60,000 files
        subprocess.run(["tar", "xzf", str(archive), "-C", str(into)], check=True)
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")


def unpacked(archive: Path) -> Path:
    """The archive unpacked once per machine under the tests' cache folder, and reused by later
    runs (unpacking CIFAR's 60,000 files costs more than decoding them). Tests only read it."""
    stat = archive.stat()
    target = TEST_CACHE / f"{archive.name.removesuffix('.tar.gz')}-{stat.st_size}-{stat.st_mtime_ns}"
    if target.is_dir():
        return target
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=TEST_CACHE))
    try:
        extract(archive, scratch / "data")
        os.replace(scratch / "data", target)
    except OSError:
        if not target.is_dir():  # else a run beside this one unpacked it first
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
