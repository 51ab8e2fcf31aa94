"""Datasets read from local files: every format from tiny files written here, the real ones where
this machine has them, the cache, and the one-line errors for missing or malformed data."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from datafiles import (
    FASHION_MNIST,
    SHARED_DATA,
    write_cifar10_batches,
    write_cifar100,
    write_idx,
    write_image_folder,
    unpacked,
    write_leaf,
)
from fedmr_ray.config import ConfigError, DataConfig, SimulationConfig
from fedmr_ray.data import load_dataset, load_partition
from fedmr_ray.data.augment import augment
from fedmr_ray.data.cache import cache_root
from fedmr_ray.setup import check, prepare

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def config(tmp_path, dataset: str, data_dir, clients: int = 2, **data) -> SimulationConfig:
    data.setdefault("partition", "iid")
    return SimulationConfig(clients=clients, data=DataConfig(
        dataset=dataset, data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"), **data))


def as_unit(x: np.ndarray, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """Model inputs back to [0, 1] (CIFAR-10's (x - 0.5) / 0.5 unless told)."""
    return x * std + mean


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- each format, from tiny files ----------------------------------------------------------

def test_cifar10_python_batches(tmp_path):
    x, y = write_cifar10_batches(tmp_path / "d")
    data = load_dataset(check(config(tmp_path, "cifar10", tmp_path / "d")))
    assert data.x_train.shape == (60, 3, 32, 32) and data.x_train.dtype == np.float32
    assert data.y_train.dtype == np.int64 and np.array_equal(data.y_train, y)
    np.testing.assert_allclose(as_unit(data.x_train), x / 255, atol=1e-6)
    assert data.x_test.shape == (12, 3, 32, 32) and data.num_classes == 10
    assert data.x_train.min() >= -1 and data.x_train.max() <= 1
    # the layout folder itself is accepted as --data-dir too
    same = load_dataset(config(tmp_path, "cifar10", tmp_path / "d" / "cifar-10-batches-py"))
    assert np.array_equal(same.x_train, data.x_train)


def test_cifar100_fine_and_coarse_labels(tmp_path):
    labels = write_cifar100(tmp_path / "d")
    fine = load_dataset(check(config(tmp_path, "cifar100", tmp_path / "d")))
    coarse = load_dataset(check(config(tmp_path, "cifar100-coarse", tmp_path / "d")))
    assert fine.num_classes == 100 and np.array_equal(fine.y_train, labels["fine"])
    assert coarse.num_classes == 20 and np.array_equal(coarse.y_train, labels["coarse"])
    assert np.array_equal(fine.x_train, coarse.x_train)


def test_cifar10_image_folders(tmp_path):
    write_image_folder(tmp_path / "d", CIFAR10_CLASSES, per_class=2)
    data = load_dataset(check(config(tmp_path, "cifar10", tmp_path / "d")))
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    # classes numbered alphabetically, files in name order
    assert data.y_train.tolist() == [k for k in range(10) for _ in range(2)]
    from PIL import Image

    first = np.asarray(Image.open(tmp_path / "d" / "train" / "airplane" / "0000.png")).transpose(2, 0, 1)
    np.testing.assert_allclose(as_unit(data.x_train[0]), first / 255, atol=1e-6)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_gzipped_or_not(tmp_path, gz):
    x, y = write_idx(tmp_path / "d", gz=gz)
    data = load_dataset(check(config(tmp_path, "mnist", tmp_path / "d")))
    assert data.x_train.shape == (40, 1, 28, 28) and data.x_test.shape == (10, 1, 28, 28)
    assert np.array_equal(data.y_train, y)
    np.testing.assert_allclose(as_unit(data.x_train[:, 0], 0.1307, 0.3081), x / 255, atol=1e-6)


def test_idx_in_torchvision_raw_folder(tmp_path):
    write_idx(tmp_path / "d" / "FashionMNIST" / "raw")
    data = load_dataset(check(config(tmp_path, "fmnist", tmp_path / "d")))
    assert len(data.y_train) == 40


# the reference's get_dataset (utils/get_dataset.py): ToTensor, then Normalize(mean, std) per channel
REFERENCE_INPUTS = [
    ("cifar10", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ("cifar100", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    ("cifar100-coarse", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    ("mnist", (0.1307,), (0.3081,)),
    ("fmnist", (0.0,), (1.0,)),  # ToTensor alone: x in [0, 1]
    ("femnist", (0.5,), (0.5,)),  # (0.5 - x) / 0.5 of LEAF's x: the inverted x, then (x - 0.5) / 0.5
]


def _first_training_image(root, dataset: str) -> np.ndarray:
    """The first training image written, [C, H, W] in [0, 1] (FEMNIST's inverted)."""
    if dataset == "cifar10":
        return write_cifar10_batches(root)[0][0] / 255
    if dataset.startswith("cifar100"):
        write_cifar100(root)
        with (root / "cifar-100-python" / "train").open("rb") as f:
            return pickle.load(f)[b"data"][0].reshape(3, 32, 32) / 255
    if dataset == "femnist":
        return 1 - write_leaf(root, {"f_a": 2})["f_a"][0][0].reshape(1, 28, 28)
    return write_idx(root)[0][0][None] / 255


@pytest.mark.parametrize(("dataset", "mean", "std"), REFERENCE_INPUTS)
def test_model_inputs_are_normalised_per_dataset_as_the_reference(tmp_path, dataset, mean, std):
    x = _first_training_image(tmp_path / "d", dataset)

    def loaded(**data):
        data.setdefault("partition", None if dataset == "femnist" else "iid")
        return load_dataset(check(config(tmp_path, dataset, tmp_path / "d", clients=1, **data)))

    def first_input(**data) -> np.ndarray:
        return loaded(**data).x_train[0]

    expected = (x - np.reshape(mean, (-1, 1, 1))) / np.reshape(std, (-1, 1, 1))
    np.testing.assert_allclose(first_input(), expected, atol=1e-6)
    np.testing.assert_allclose(first_input(normalise="reference"), expected, atol=1e-6)
    np.testing.assert_allclose(first_input(normalise="half"), (x - 0.5) / 0.5, atol=1e-6)
    # a black pixel's input, per channel, which augmentation pads with
    np.testing.assert_allclose(loaded().black, np.broadcast_to(-np.divide(mean, std), (x.shape[0],)), atol=1e-6)
    assert loaded(normalise="half").black == (-1.0,) * x.shape[0]
    # one cache entry serves both: it holds the pixels, normalised when loaded
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1


def test_leaf_writers_are_the_natural_clients(tmp_path):
    writers = write_leaf(tmp_path / "d", {"f_b": 5, "f_a": 3, "f_c": 4})
    data = load_dataset(check(config(tmp_path, "femnist", tmp_path / "d", clients=3, partition=None)))
    assert data.num_classes == 62 and data.x_train.shape == (12, 1, 28, 28)
    for client, writer in enumerate(["f_a", "f_b", "f_c"]):  # sorted, as the reference reads them
        x, y = data.client_samples(client)
        assert np.array_equal(y, writers[writer][1])
        # the reference feeds (0.5 - x) / 0.5: LEAF's white background (1.0) becomes -1
        np.testing.assert_allclose(x.reshape(len(y), -1), (0.5 - writers[writer][0]) / 0.5, atol=1e-6)
    assert len(data.y_test) == 6  # the three writers' test samples
    fewer = load_dataset(config(tmp_path, "femnist", tmp_path / "d", clients=2, partition=None))
    assert fewer.client_sizes().tolist() == [3, 5] and len(fewer.y_test) == 4  # f_a's and f_b's
    with pytest.raises(ConfigError, match="--clients 4: femnist has 3 users") as err:
        prepare(config(tmp_path, "femnist", tmp_path / "d", clients=4, partition=None))
    one_line_error(err)


def _leaf_test_split(root) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each test writer's (x, y) as written."""
    users = {}
    for path in (root / "test").glob("*.json"):
        users.update(json.loads(path.read_text())["user_data"])
    return {u: (np.asarray(r["x"]), np.asarray(r["y"])) for u, r in users.items()}


def test_femnist_test_set_is_the_test_samples_of_the_writers_that_are_clients(tmp_path):
    # f_b has no test samples, f_z no training ones: the reference (utils/FEMNIST.py) would refuse
    # such data (it asserts the two writer lists equal); here f_z's samples are never tested on
    write_leaf(tmp_path / "d", {"f_b": 5, "f_a": 3, "f_c": 4}, test_writers={"f_c": 1, "f_z": 3, "f_a": 2})
    test = _leaf_test_split(tmp_path / "d")

    def test_set(clients: int, **data):
        loaded = load_dataset(check(config(tmp_path, "femnist", tmp_path / "d", clients=clients,
                                           **{"partition": None, **data})))
        return loaded.x_test.reshape(len(loaded.y_test), -1), loaded.y_test

    def writers(*names):  # their test samples, writer after writer, as model inputs (0.5 - x) / 0.5
        return (np.concatenate([(0.5 - test[n][0]) / 0.5 for n in names]),
                np.concatenate([test[n][1] for n in names]))

    for clients, names in ((3, ("f_a", "f_c")), (2, ("f_a",)), (1, ("f_a",))):  # writers sorted: f_a, f_b, f_c
        x, y = test_set(clients)
        expected_x, expected_y = writers(*names)
        assert np.array_equal(y, expected_y), clients
        np.testing.assert_allclose(x, expected_x, atol=1e-6)
    # a partition other than the writers: every training writer is some client's
    assert np.array_equal(test_set(2, partition="iid")[1], writers("f_a", "f_c")[1])
    # --femnist-test all: every test writer's, the other writers' after the training writers'
    assert np.array_equal(test_set(1, femnist_test="all")[1], writers("f_a", "f_c", "f_z")[1])


def test_natural_partition_needs_users(tmp_path):
    write_idx(tmp_path / "d")
    with pytest.raises(ConfigError, match="--partition natural: mnist has no users of its own") as err:
        prepare(config(tmp_path, "mnist", tmp_path / "d", partition="natural"))
    one_line_error(err)


# --- the cache ------------------------------------------------------------------------------

def test_second_load_comes_from_the_cache_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    write_idx(tmp_path / "d", gz=False)
    first = load_dataset(config(tmp_path, "mnist", tmp_path / "d"))
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and (entries[0] / "x_train.npy").is_file()
    assert np.load(entries[0] / "x_train.npy", mmap_mode="r").dtype == np.uint8  # pixels, a quarter of float32

    import fedmr_ray.data.cache as cache

    def no_decoding(source):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache, "decode", no_decoding)
    second = load_dataset(config(tmp_path, "mnist", tmp_path / "d"))
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_test, second.y_test)
    monkeypatch.undo()

    write_idx(tmp_path / "d", gz=False, seed=1)  # new contents, new sizes or times: a new entry
    third = load_dataset(config(tmp_path, "mnist", tmp_path / "d"))
    assert not np.array_equal(first.x_train, third.x_train)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_default_cache_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root(None) == tmp_path / "fedmr-ray"
    assert cache_root(str(tmp_path / "c")) == tmp_path / "c"


# --- missing or malformed data: one line naming the layout and how to get it --------------

def _corrupt_cifar(root):
    write_cifar10_batches(root)
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")


def _wrong_shape_cifar(root):
    write_cifar10_batches(root)
    with (root / "cifar-10-batches-py" / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f)


def _truncated_idx(root):
    write_idx(root, gz=False)
    path = root / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])


def _missing_idx(root):
    write_idx(root)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()


def _bad_label_idx(root):
    write_idx(root, train_labels=np.full(40, 12))


def _bad_leaf(root):
    write_leaf(root, {"a": 2})
    next((root / "train").glob("*.json")).write_text("{not json")


def _short_leaf_pixels(root):
    write_leaf(root, {"a": 2})
    path = next((root / "train").glob("*.json"))
    record = json.loads(path.read_text())
    record["user_data"]["a"]["x"] = [[0.5] * 100, [0.5] * 100]
    path.write_text(json.dumps(record))


def _small_images(root):
    from PIL import Image

    write_image_folder(root, CIFAR10_CLASSES, per_class=1)
    Image.new("RGB", (16, 16)).save(root / "train" / "cat" / "0000.png")


MALFORMED = [
    ("cifar10", None, "no dataset found there; expected cifar-10-batches-py/"),
    ("cifar10", _corrupt_cifar, "data_batch_3: not a CIFAR python batch"),
    ("cifar10", _wrong_shape_cifar, "test_batch: 'data' is uint8 (4, 100)"),
    ("cifar10", _small_images, "0000.png: image is 16x16, not 32x32"),
    ("cifar100", None, "expected cifar-100-python/"),
    ("mnist", _truncated_idx, "train-images-idx3-ubyte: unreadable IDX file"),
    ("mnist", _missing_idx, "missing the t10k-labels file(s)"),
    ("mnist", _bad_label_idx, "label 12 is not in 0..9"),
    ("femnist", _bad_leaf, "not LEAF JSON"),
    ("femnist", _short_leaf_pixels, "x is (2, 100), not [N, 784]"),
    ("femnist", None, "expected LEAF JSON"),
]


@pytest.mark.parametrize(("dataset", "make", "message"), MALFORMED)
def test_missing_or_malformed_dataset_is_one_line(tmp_path, dataset, make, message):
    root = tmp_path / "d"
    root.mkdir()
    if make:
        make(root)
    with pytest.raises(ConfigError) as err:
        prepare(config(tmp_path, dataset, root, partition=None if dataset == "femnist" else "iid", clients=1))
    text = one_line_error(err)
    assert text.startswith(f"--dataset {dataset}: ") and message in text, text
    assert "--data-dir" in text  # how to get it / where to put it
    assert not (tmp_path / "cache").exists() or not any(p.name.startswith(dataset) and not p.name.startswith(".")
                                                        for p in (tmp_path / "cache").iterdir())


def test_data_dir_that_does_not_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"--dataset fmnist: .*nowhere: no such directory; expected IDX files.*"
                                          r"apt-get install dataset-fashion-mnist"):
        prepare(config(tmp_path, "fmnist", tmp_path / "nowhere"))


# --- augmentation ---------------------------------------------------------------------------

def test_augment_is_a_seeded_crop_and_flip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    x = x.repeat(16, 1, 1, 1)  # 32 images
    out = augment(x, torch.Generator().manual_seed(5), padding=2)
    again = augment(x, torch.Generator().manual_seed(5), padding=2)
    other = augment(x, torch.Generator().manual_seed(6), padding=2)
    assert out.shape == x.shape and torch.equal(out, again) and not torch.equal(out, other)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    flips = 0
    for image, source in zip(out, padded):
        windows = {(top, left, flip) for top in range(5) for left in range(5) for flip in (False, True)
                   if torch.equal(image, (lambda w: w.flip(2) if flip else w)(source[:, top:top + 8, left:left + 8]))}
        assert windows, "not a crop of the padded image"
        flips += all(flip for _, _, flip in windows)
    assert 4 <= flips <= 28  # about half flipped


def test_augment_flag_is_for_cifar_only(tmp_path):
    with pytest.raises(ConfigError, match="--augment: random crop and flip are for CIFAR images, not --dataset mnist"):
        prepare(config(tmp_path, "mnist", tmp_path, augment=True))
    assert dataclasses.replace(DataConfig(dataset="cifar10"), augment=True).augment


# --- real data, where this machine has it ---------------------------------------------------

@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_is_the_default_fmnist_dir(tmp_path, monkeypatch):
    import fedmr_ray.data.cache

    cfg = SimulationConfig(clients=10, data=DataConfig(dataset="fmnist", cache_dir=str(tmp_path / "cache")))
    data = load_dataset(check(cfg))
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(data.y_train).tolist() == [6000] * 10 and np.bincount(data.y_test).tolist() == [1000] * 10
    # the default partition is dirichlet (alpha 0.5) and uses every sample once
    assert np.array_equal(np.sort(data.client_index), np.arange(60000))
    assert data.client_sizes().min() >= 10
    monkeypatch.setattr(fedmr_ray.data.cache, "decode", lambda source: pytest.fail("decoded again"))
    again = load_dataset(cfg)  # from the cache
    assert np.array_equal(again.x_test, data.x_test)


@pytest.mark.skipif(not (SHARED_DATA / "femnist-leaf-niid-sample.tar.gz").is_file(), reason="../shared/data is absent")
def test_real_femnist_sample(tmp_path):
    root = unpacked(SHARED_DATA / "femnist-leaf-niid-sample.tar.gz")
    cfg = SimulationConfig(clients=105, data=DataConfig(dataset="femnist", data_dir=str(root),
                                                        cache_dir=str(tmp_path / "cache")))
    data = load_dataset(check(cfg))
    # the test samples of the 105 writers (the sample's README: 184 test writers, 4,088 samples)
    assert data.num_clients == 105 and len(data.y_train) == 14708 and len(data.y_test) == 1685
    assert len(load_dataset(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, femnist_test="all"))).y_test) == 4088
    assert len(load_dataset(dataclasses.replace(cfg, clients=10)).y_test) == 155  # the first 10 writers'
    assert data.client_index is None and data.client_sizes().sum() == 14708
    assert data.y_train.max() <= 61 and data.x_train.shape[1:] == (1, 28, 28)
    assert np.median(data.x_train) == -1.0  # mostly background, dark after the reference's inversion
    with pytest.raises(ConfigError, match="--clients 106: femnist has 105 users"):
        prepare(dataclasses.replace(cfg, clients=106))


@pytest.mark.skipif(not (SHARED_DATA / "cifar10-images-jpeg.tar.gz").is_file(), reason="../shared/data is absent")
def test_real_cifar10_jpeg_folders_decode_once_then_load_from_the_cache(tmp_path, monkeypatch):
    import fedmr_ray.data.cache

    root = unpacked(SHARED_DATA / "cifar10-images-jpeg.tar.gz")
    cfg = SimulationConfig(clients=100, data=DataConfig(dataset="cifar10", data_dir=str(root),
                                                        cache_dir=str(tmp_path / "cache")))
    prepare(cfg)  # decodes and caches

    def decode(source):
        raise AssertionError(f"decoded {source.root} again")

    monkeypatch.setattr(fedmr_ray.data.cache, "decode", decode)
    data = load_dataset(cfg)  # from the cache: no JPEG decoded
    assert data.x_train.shape == (50000, 3, 32, 32) and data.x_test.shape == (10000, 3, 32, 32)
    assert np.bincount(data.y_train).tolist() == [5000] * 10 and np.bincount(data.y_test).tolist() == [1000] * 10
    # per-channel training mean as the data's README gives it, through the (x - 0.5) / 0.5 normalisation
    mean = as_unit(data.x_train.mean(axis=(0, 2, 3), dtype=np.float64))
    np.testing.assert_allclose(mean, [0.4913, 0.4821, 0.4465], atol=2e-4)
    assert load_partition(cfg).sizes().tolist() == data.client_sizes().tolist()


def test_augment_pads_each_channel_with_its_black():
    x = torch.rand(4, 3, 6, 6)
    black = (-2.4291, -2.4183, -2.2214)  # CIFAR-100's -mean / std
    out = augment(x, torch.Generator().manual_seed(1), padding=2, pad_value=black)
    scalar = augment(x, torch.Generator().manual_seed(1), padding=2, pad_value=-1.0)
    for c, value in enumerate(black):  # the pixels that are not the image's are the channel's black
        padded = out[:, c][scalar[:, c] == -1.0]
        assert padded.numel() > 0 and torch.all(padded == torch.tensor(value))
    assert torch.equal(out[scalar != -1.0], scalar[scalar != -1.0])  # the crops and flips are the same

