"""What each dataset is, before any file is read: its input shape, classes, natural users, the
layout it is read from and where to get it. Pure metadata: config validation and `fedmr-ray models`
use it without touching the data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedmr_ray.errors import SettingError

PARTITIONS = ("iid", "dirichlet", "shards", "one-label", "two-labels", "one-label-80", "one-label-50", "natural")
MeanStd = tuple[tuple[float, ...], tuple[float, ...]]  # per channel: model inputs are (x - mean) / std
HALF: MeanStd = ((0.5,), (0.5,))

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
# LEAF Shakespeare's characters, in the order of its (and the reference's) utils/language_utils.py
SHAKESPEARE_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
_LEAF_HOW = ("generate it with LEAF (github.com/TalwalkarLab/leaf, data/{}/preprocess.sh) and pass the folder "
             "holding train/ and test/ as --data-dir")
_IDX_LAYOUT = ("IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
               "t10k-labels-idx1-ubyte (each may be .gz; in the folder or its raw/)")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    formats: tuple[str, ...]  # the on-disk formats tried, in order (see sources.py)
    layout: str  # what the data directory must hold, for error messages
    how_to_get: str
    default_dirs: tuple[str, ...] = ()
    natural: bool = False  # has users of its own (the natural partition, and the default one)
    label_key: str = "labels"  # which labels a CIFAR python batch gives (cifar-100: fine or coarse)
    invert: bool = False  # pixels stored dark-on-light, flipped to light-on-dark as the reference does
    # (mean, std) per channel of the reference's transforms.Normalize (utils/get_dataset.py)
    mean_std: MeanStd = HALF
    # a text dataset's characters: its inputs are strings of them, read as indices into this
    # (uint8, not normalised), its labels the next character; "" for numeric inputs
    alphabet: str = ""

    @property
    def default_partition(self) -> str:
        return "natural" if self.natural else "dirichlet"

    def normalisation(self, scheme: str) -> MeanStd:
        """(mean, std) of the model inputs under --normalise `scheme`."""
        return self.mean_std if scheme == "reference" else HALF

    @property
    def is_text(self) -> bool:
        return bool(self.alphabet)

    @property
    def is_cifar(self) -> bool:
        return self.name.startswith("cifar")

    def data_dir(self, data_dir: str | None) -> Path:
        """--data-dir if given; else the first default location that exists (else the first)."""
        if data_dir is not None:
            return Path(data_dir).expanduser().absolute()
        candidates = [Path(d).expanduser().absolute() for d in self.default_dirs]
        return next((d for d in candidates if d.exists()), candidates[0])


def _cifar100(name: str, classes: int, label_key: str) -> DatasetSpec:
    return DatasetSpec(
        name, (3, 32, 32), classes, ("cifar-python",),
        layout="cifar-100-python/ (train, test; torchvision's python version)",
        how_to_get=f"get cifar-100-python.tar.gz from {_CIFAR_URL} and extract it into --data-dir",
        default_dirs=("data/cifar100",), label_key=label_key,
        mean_std=((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)))


def _idx(name: str, how_to_get: str, default_dirs: tuple[str, ...], mean_std: MeanStd) -> DatasetSpec:
    return DatasetSpec(name, (1, 28, 28), 10, ("idx",), layout=_IDX_LAYOUT, how_to_get=how_to_get,
                       default_dirs=default_dirs, mean_std=mean_std)


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("synthetic", (60,), 10, (), layout="(generated from the seed)", how_to_get="",
                natural=True),
    DatasetSpec(
        "cifar10", (3, 32, 32), 10, ("cifar-python", "image-folder"),
        layout="cifar-10-batches-py/ (data_batch_1..5, test_batch; torchvision's python version) or "
               "image folders train/<class>/*.jpg|png and test/<class>/...",
        how_to_get=f"get cifar-10-python.tar.gz from {_CIFAR_URL} and extract it into --data-dir",
        default_dirs=("data/cifar10",)),
    _cifar100("cifar100", 100, "fine_labels"),
    _cifar100("cifar100-coarse", 20, "coarse_labels"),
    _idx("mnist", "get the four files from https://yann.lecun.com/exdb/mnist/ (or a mirror) into --data-dir",
         ("data/mnist",), ((0.1307,), (0.3081,))),
    _idx("fmnist", "apt-get install dataset-fashion-mnist (puts them in /usr/share/datasets/fashion-mnist), "
                   "or get them from https://github.com/zalandoresearch/fashion-mnist into --data-dir",
         ("/usr/share/datasets/fashion-mnist", "data/fmnist"), ((0.0,), (1.0,))),  # ToTensor alone
    DatasetSpec(
        "femnist", (1, 28, 28), 62, ("leaf",),
        layout="LEAF JSON: train/*.json and test/*.json (users, num_samples, user_data), in the folder or its data/",
        how_to_get=_LEAF_HOW.format("femnist"),
        default_dirs=("data/femnist",), natural=True, invert=True),  # inverted, then HALF: (0.5 - x) / 0.5
    DatasetSpec(
        "shakespeare", (80,), len(SHAKESPEARE_LETTERS), ("leaf",),
        layout="LEAF JSON: train/*.json and test/*.json (users, user_data: x 80-character lines, y the "
               "character after each), in the folder or its data/",
        how_to_get=_LEAF_HOW.format("shakespeare"),
        default_dirs=("data/shakespeare",), natural=True, alphabet=SHAKESPEARE_LETTERS),
)}


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise SettingError("data.dataset", "--dataset", name, f"accepted values are: {', '.join(DATASETS)}")
    return DATASETS[name]
