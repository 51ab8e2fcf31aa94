"""Reading datasets from local files: CIFAR python batches, image folders, IDX (MNIST-like) and
LEAF JSON (FEMNIST's pixels, Shakespeare's lines of text). Nothing is downloaded. A missing or
malformed dataset is a `ConfigError` of one line naming the expected layout and how to get the data.

Images come out as pixels, NCHW: uint8 (0..255), or float32 in [0, 1] where the source holds
values that are not whole 1/255 steps; `normalise` makes them the model inputs. Text comes out as
uint8 indices into the dataset's alphabet, which are the model inputs as they are.
"""

from __future__ import annotations

import functools
import gzip
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedmr_ray.errors import ConfigError, one_line
from fedmr_ray.data.catalog import DatasetSpec, MeanStd

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
CIFAR100_FILES = ("train", "test")
IDX_STEMS = ("train-images", "train-labels", "t10k-images", "t10k-labels")
IDX_TORCHVISION = {"mnist": "MNIST", "fmnist": "FashionMNIST"}


@dataclass(frozen=True)
class Source:
    """A dataset found on disk: its format, folder and the files it is read from."""

    spec: DatasetSpec
    format: str
    root: Path
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Decoded:
    """A dataset as read: pixels and labels, before normalisation and partition. `users`, where
    the dataset has users of its own, are offsets: user u's training samples are rows
    users[u]:users[u + 1], and its test samples rows test_users[u]:test_users[u + 1]; the test
    rows from test_users[-1] on are those of users without training samples."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    users: np.ndarray | None = None
    test_users: np.ndarray | None = None


def dataset_error(spec: DatasetSpec, where: Path | str, problem: str) -> ConfigError:
    return ConfigError(f"--dataset {spec.name}: {where}: {one_line(problem)}; expected {spec.layout}; "
                       f"{spec.how_to_get}")


def normalise(pixels: np.ndarray, mean_std: MeanStd) -> np.ndarray:
    """Model inputs: (x - mean) / std per channel of x in [0, 1], float32, as torchvision's
    ToTensor + Normalize(mean, std) (each dataset's: DatasetSpec.normalisation)."""
    mean, std = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in mean_std)
    x = pixels.astype(np.float32)
    if pixels.dtype == np.uint8:
        x /= np.float32(255)
    x -= mean
    x /= std
    return x


# --- locating -------------------------------------------------------------------------------

def locate(spec: DatasetSpec, data_dir: Path) -> Source:
    if not data_dir.is_dir():
        raise dataset_error(spec, data_dir, "no such directory")
    for fmt in spec.formats:
        source = _LOCATORS[fmt](spec, data_dir)
        if source is not None:
            return source
    raise dataset_error(spec, data_dir, "no dataset found there")


def _locate_cifar_python(spec: DatasetSpec, data_dir: Path) -> Source | None:
    folder, names = (("cifar-10-batches-py", CIFAR10_BATCHES) if spec.name == "cifar10"
                     else ("cifar-100-python", CIFAR100_FILES))
    for root in (data_dir / folder, data_dir):
        if all((root / name).is_file() for name in names):
            return Source(spec, "cifar-python", root, tuple(root / name for name in names))
    if (data_dir / folder).is_dir():
        missing = [name for name in names if not (data_dir / folder / name).is_file()]
        raise dataset_error(spec, data_dir / folder, f"missing {', '.join(missing)}")
    return None


def _locate_image_folder(spec: DatasetSpec, data_dir: Path) -> Source | None:
    if not ((data_dir / "train").is_dir() and (data_dir / "test").is_dir()):
        return None
    files = []
    for split in ("train", "test"):
        classes = sorted(p for p in (data_dir / split).iterdir() if p.is_dir())
        images = [f for c in classes for f in sorted(c.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            return None
        files += images
    return Source(spec, "image-folder", data_dir, tuple(files))


def _idx_file(root: Path, stem: str) -> Path | None:
    kind = "idx3" if stem.endswith("images") else "idx1"
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            path = root / f"{stem}{sep}{kind}-ubyte{suffix}"
            if path.is_file():
                return path
    return None


def _locate_idx(spec: DatasetSpec, data_dir: Path) -> Source | None:
    roots = [data_dir, data_dir / "raw"]
    if spec.name in IDX_TORCHVISION:
        roots.append(data_dir / IDX_TORCHVISION[spec.name] / "raw")
    for root in roots:
        found = [_idx_file(root, stem) for stem in IDX_STEMS]
        if all(found):
            return Source(spec, "idx", root, tuple(found))
        if any(found):
            missing = [stem for stem, path in zip(IDX_STEMS, found) if path is None]
            raise dataset_error(spec, root, f"missing the {', '.join(missing)} file(s)")
    return None


def _locate_leaf(spec: DatasetSpec, data_dir: Path) -> Source | None:
    for root in (data_dir, data_dir / "data"):
        train, test = sorted((root / "train").glob("*.json")), sorted((root / "test").glob("*.json"))
        if train and test:
            return Source(spec, "leaf", root, tuple(train + test))
        if train or test:
            raise dataset_error(spec, root, f"no JSON files in {'test' if train else 'train'}/")
    return None


_LOCATORS: dict[str, Callable[[DatasetSpec, Path], Source | None]] = {
    "cifar-python": _locate_cifar_python, "image-folder": _locate_image_folder, "idx": _locate_idx,
    "leaf": _locate_leaf,
}


# --- decoding -------------------------------------------------------------------------------

def decode(source: Source) -> Decoded:
    decoded = _DECODERS[source.format](source)
    _check_labels(source, decoded.y_train, decoded.y_test)
    return decoded


def _check_labels(source: Source, *labels: np.ndarray) -> None:
    classes = source.spec.num_classes
    for y in labels:
        if len(y) == 0:
            raise dataset_error(source.spec, source.root, "a split holds no samples")
        if y.min() < 0 or y.max() >= classes:
            raise dataset_error(source.spec, source.root,
                                f"label {int(y.max()) if y.max() >= classes else int(y.min())} is not in 0..{classes - 1}")


def _unpickle(source: Source, path: Path) -> dict:
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except Exception as err:  # a corrupt pickle raises any of a dozen types
        raise dataset_error(source.spec, path, f"not a CIFAR python batch ({type(err).__name__}: {err})") from None
    if not isinstance(batch, dict):
        raise dataset_error(source.spec, path, "not a CIFAR python batch (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _cifar_batch(source: Source, path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(source, path)
    key = source.spec.label_key
    if "data" not in batch or key not in batch:
        raise dataset_error(source.spec, path, f"a CIFAR python batch without 'data' or '{key}'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch[key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise dataset_error(source.spec, path,
                            f"'data' is {data.dtype} {data.shape}, not uint8 [N, 3072] with one label per row")
    return data.reshape(-1, 3, 32, 32), labels


def _decode_cifar_python(source: Source) -> Decoded:
    *train, test = [_cifar_batch(source, path) for path in source.files]
    return Decoded(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), *test)


def _decode_image(source: Source, path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except Exception as err:  # PIL raises several types for unreadable files
        raise dataset_error(source.spec, path, f"cannot read the image ({type(err).__name__}: {err})") from None
    height, width = source.spec.input_shape[1:]
    if pixels.shape[:2] != (height, width):
        raise dataset_error(source.spec, path, f"image is {pixels.shape[1]}x{pixels.shape[0]}, not {width}x{height}")
    return pixels.transpose(2, 0, 1)


def _decode_image_folder(source: Source) -> Decoded:
    classes = sorted({f.parent.name for f in source.files if f.parent.parent.name == "train"})
    if len(classes) != source.spec.num_classes:
        raise dataset_error(source.spec, source.root / "train",
                            f"{len(classes)} class folders with images, not {source.spec.num_classes}")
    index = {name: i for i, name in enumerate(classes)}  # alphabetical, as torchvision's ImageFolder
    splits = {}
    for split in ("train", "test"):
        files = [f for f in source.files if f.parent.parent.name == split]
        unknown = sorted({f.parent.name for f in files} - set(classes))
        if unknown:
            raise dataset_error(source.spec, source.root / split, f"class folder {unknown[0]!r} is not in train/")
        x = np.stack([_decode_image(source, f) for f in files])
        splits[split] = (x, np.array([index[f.parent.name] for f in files], dtype=np.int64))
    return Decoded(*splits["train"], *splits["test"])


def read_idx(path: Path) -> np.ndarray:
    """An IDX array of unsigned bytes (gzipped or not)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"{len(raw) - header} bytes of data for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _decode_idx(source: Source) -> Decoded:
    arrays = []
    for path in source.files:
        try:
            arrays.append(read_idx(path))
        except (OSError, ValueError, EOFError) as err:
            raise dataset_error(source.spec, path, f"unreadable IDX file ({err})") from None
    height, width = source.spec.input_shape[1:]
    for (images, labels), path in zip((arrays[:2], arrays[2:]), source.files[::2]):
        if images.shape[1:] != (height, width) or labels.ndim != 1 or len(labels) != len(images):
            raise dataset_error(source.spec, path, f"images {images.shape} and labels {labels.shape} do not "
                                                   f"match: expected [N, {height}, {width}] and [N]")
    x_train, y_train, x_test, y_test = arrays
    return Decoded(x_train[:, None].copy(), y_train.astype(np.int64), x_test[:, None].copy(), y_test.astype(np.int64))


def _leaf_users(source: Source, files: list[Path]) -> dict[str, dict]:
    users: dict[str, dict] = {}
    for path in files:
        try:
            users.update(json.loads(path.read_text())["user_data"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise dataset_error(source.spec, path, f"not LEAF JSON ({type(err).__name__}: {err})") from None
    return users


def _leaf_pixels(source: Source, where: Path, values: list) -> np.ndarray:
    """LEAF's FEMNIST values are in [0, 1] with the background at 1; the reference feeds
    (0.5 - x) / 0.5, so here x becomes 1 - x (ink bright), in whole 1/255 steps where it is one."""
    height, width = source.spec.input_shape[1:]
    try:
        x = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError) as err:
        raise dataset_error(source.spec, where, f"x is not a list of pixel lists ({err})") from None
    if x.ndim != 2 or x.shape[1] != height * width or (x.size and (x.min() < 0 or x.max() > 1)):
        raise dataset_error(source.spec, where, f"x is {x.shape}, not [N, {height * width}] values in [0, 1]")
    x = x.reshape(-1, 1, height, width)
    steps = np.rint(x * 255)
    if source.spec.invert:
        x, steps = 1 - x, 255 - steps
    if np.abs(x * 255 - steps).max(initial=0) < 1e-2:
        return steps.astype(np.uint8)
    return x


@functools.cache
def _index_table(alphabet: str) -> np.ndarray:
    """Byte -> its index in the alphabet (255: not in it), for latin-1 text."""
    table = np.full(256, 255, np.uint8)
    table[np.frombuffer(alphabet.encode("ascii"), np.uint8)] = np.arange(len(alphabet))
    return table


def _leaf_text(source: Source, where: Path, user: str, record: dict) -> tuple[np.ndarray, np.ndarray]:
    """LEAF Shakespeare: x lines of 80 characters, y the character after each; as indices into the
    dataset's alphabet (the reference's word_to_indices and letter_to_vec), uint8 [N, 80] and int64."""
    spec, length = source.spec, source.spec.input_shape[0]
    lines, targets = record["x"], record["y"]
    if not all(isinstance(line, str) and len(line) == length for line in lines):
        raise dataset_error(spec, where, f"user {user!r}: x is not a list of {length}-character strings")
    if not all(isinstance(c, str) and len(c) == 1 for c in targets):
        raise dataset_error(spec, where, f"user {user!r}: y is not a list of single characters")
    text = "".join(lines) + "".join(targets)
    indices = _index_table(spec.alphabet)[np.frombuffer(text.encode("latin-1", errors="ignore"), np.uint8)]
    if len(indices) != len(text) or (indices == 255).any():  # a character beyond latin-1, or not in the alphabet
        bad = next(c for c in text if c not in spec.alphabet)
        raise dataset_error(spec, where, f"user {user!r}: character {bad!r} is not one of the {len(spec.alphabet)} "
                                         f"of LEAF Shakespeare")
    return indices[:len(lines) * length].reshape(-1, length), indices[len(lines) * length:].astype(np.int64)


def _leaf_split(source: Source, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(inputs, labels, user offsets, users) of one split, users in sorted order as the reference
    reads them (utils/FEMNIST.py and utils/ShakeSpeare.py read_dir), those without samples left out."""
    where = source.root / split
    users = _leaf_users(source, [f for f in source.files if f.parent.name == split])
    xs, ys, sizes, names = [], [], [], []
    for user in sorted(users):
        record = users[user]
        if not isinstance(record, dict) or "x" not in record or "y" not in record or len(record["x"]) != len(record["y"]):
            raise dataset_error(source.spec, where, f"user {user!r} has no matching x and y lists")
        if len(record["y"]) == 0:
            continue
        if source.spec.is_text:
            x, y = _leaf_text(source, where, user, record)
        else:
            x, y = _leaf_pixels(source, where, record["x"]), np.asarray(record["y"], dtype=np.int64)
        xs.append(x)
        ys.append(y)
        sizes.append(len(record["y"]))
        names.append(user)
    if not xs:
        raise dataset_error(source.spec, where, "no user has samples")
    if any(x.dtype != np.uint8 for x in xs):
        xs = [normalised_to_unit(x) for x in xs]
    return np.concatenate(xs), np.concatenate(ys), np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), names


def _by_training_user(train_users: list[str], test_users: list[str],
                      test_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, offsets): the test split's rows in the order of the training users, as the
    reference reads its test set (each training writer's test samples in turn; utils/FEMNIST.py),
    then those of the users without training samples; training user u's are rows[offsets[u]:
    offsets[u + 1]]."""
    position = {user: i for i, user in enumerate(test_users)}
    own = [position[user] for user in train_users if user in position]
    order = own + sorted(set(range(len(test_users))) - set(own))
    rows = np.concatenate([np.arange(test_offsets[i], test_offsets[i + 1]) for i in order])
    counts = np.diff(test_offsets)
    sizes = [counts[position[user]] if user in position else 0 for user in train_users]
    return rows, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def normalised_to_unit(pixels: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1], whatever their storage."""
    return pixels.astype(np.float32) / 255 if pixels.dtype == np.uint8 else pixels.astype(np.float32)


def _decode_leaf(source: Source) -> Decoded:
    x_train, y_train, users, train_names = _leaf_split(source, "train")
    x_test, y_test, test_offsets, test_names = _leaf_split(source, "test")
    if x_train.dtype != x_test.dtype:
        x_train, x_test = normalised_to_unit(x_train), normalised_to_unit(x_test)
    rows, test_users = _by_training_user(train_names, test_names, test_offsets)
    return Decoded(x_train, y_train, x_test[rows], y_test[rows], users, test_users)


_DECODERS: dict[str, Callable[[Source], Decoded]] = {
    "cifar-python": _decode_cifar_python, "image-folder": _decode_image_folder, "idx": _decode_idx,
    "leaf": _decode_leaf,
}
