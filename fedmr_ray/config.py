"""The whole configuration of a simulation, as plain data: one frozen dataclass per concern.

The layout is the same everywhere: `SimulationConfig`'s own settings at the top, then its
sections `data`, `train`, `algorithm` and `runtime`, in config.json, in `--config` files and in
`fedmr-ray simulate --help`, whose flags are derived from these declarations. Each setting
declares its type, default, help and the values it accepts; a value of the wrong type or out of
range is a `SettingError` when the configuration is made, from Python or from a file alike.

What needs the rest of the package (is the dataset known, does the model take its input, are the
algorithm's own settings right, can the partition be made) is checked once per run, above data/,
models/ and algorithms/, by `fedmr_ray.setup`. This module imports nothing of the package but its
errors, and neither torch nor numpy.
"""

from __future__ import annotations

import functools
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from fedmr_ray.errors import ConfigError, SettingError, UnknownKey, must_be, one_line, show

__all__ = ["AlgorithmConfig", "ConfigError", "DataConfig", "RuntimeConfig", "Settings", "SettingError",
           "SimulationConfig", "TrainConfig", "UnknownKey", "flag_of", "one_line", "setting"]


Check = tuple[Callable[[Any], bool], str]


def setting(default: Any, help: str, *, check: Callable[[Any], bool] | None = None, must: str = "",
            also: tuple[Check, ...] = (), flag: str | None = None, panel: str | None = None,
            path: bool = False) -> Any:
    """A setting: its default; the help of its flag; `check`, what values it accepts, and `must`,
    those values in words ("an integer >= 1"), `also` more such pairs, checked in turn; its flag
    where that is not --<name>; the help panel of a top-level setting; `path`, a file or folder
    (the command line makes it absolute)."""
    checks = ((check, must),) if check is not None else ()
    return field(default=default, metadata={"help": help, "checks": checks + tuple(also), "flag": flag,
                                            "panel": panel, "path": path})


def flag_of(f: Any) -> str:
    """A setting's command-line flag."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _hint_words(hint: Any) -> str:
    args = typing.get_args(hint)
    if type(None) in args:
        return f"{_hint_words(next(a for a in args if a is not type(None)))} (or none)"
    return _WORDS.get(hint, "a table of settings")


def _typed(value: Any, hint: Any, name: str, flag: str) -> Any:
    """The value as the setting's type (an integer for a float setting becomes a float; a mapping
    for a section becomes that section's settings), or a SettingError."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        inner = next(a for a in args if a is not type(None))
        try:
            return _typed(value, inner, name, flag)
        except SettingError:
            raise must_be(name, flag, value, _hint_words(hint)) from None
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if hint is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if isinstance(hint, type) and issubclass(hint, (Settings, AlgorithmConfig)):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            try:
                return hint.from_dict(value)
            except SettingError as err:
                raise err.within(name) from None
    raise must_be(name, flag, value, _hint_words(hint))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@dataclass(frozen=True)
class Settings:
    """A frozen group of settings whose values are checked when it is made (see `setting`)."""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):
            flag = flag_of(f)
            value = _typed(getattr(self, f.name), hints[f.name], f.name, flag)
            object.__setattr__(self, f.name, value)
            for check, must in f.metadata.get("checks", ()):
                if value is not None and not check(value):
                    raise must_be(f.name, flag, value, must)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Settings:
        """Settings from a mapping of their names (nested mappings for sections); an unknown
        name is a ConfigError listing the known ones."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a table of settings, got {show(raw)}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(raw) - set(known), key=str)
        if unknown:
            raise UnknownKey(str(unknown[0]), known=tuple(known))
        return cls(**raw)


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, (Settings, AlgorithmConfig)) else value


class AlgorithmConfig:
    """Which algorithm runs, and its own settings, by their names: the fields of the `Settings`
    its module declares (algorithms/<name>.py), whose defaults fill in what is not given. Plain
    data here (numbers, strings, booleans); fedmr_ray.setup checks them against the algorithm's
    declaration, once per run.

    >>> AlgorithmConfig("fedprox", mu=0.1)
    """

    __slots__ = ("name", "settings")
    FLAG = "--algorithm"

    def __init__(self, name: str = "fedmr", **settings: Any):
        if not isinstance(name, str):
            raise must_be("name", self.FLAG, name, "a string: an algorithm's name")
        for key, value in settings.items():
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise must_be(key, "--" + key.replace("_", "-"), value, "a number, a string or true/false")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "settings", types.MappingProxyType(dict(sorted(settings.items()))))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("AlgorithmConfig is frozen")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AlgorithmConfig) and (self.name, dict(self.settings)) == (other.name, dict(other.settings))

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.settings.items())))

    def __repr__(self) -> str:
        return f"AlgorithmConfig({', '.join([repr(self.name), *(f'{k}={v!r}' for k, v in self.settings.items())])})"

    def __reduce__(self):
        return _algorithm_config, (self.name, dict(self.settings))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.settings}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AlgorithmConfig:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"algorithm: expected a table of settings, got {show(raw)}")
        return cls(**raw)


def _algorithm_config(name: str, settings: dict[str, Any]) -> AlgorithmConfig:
    return AlgorithmConfig(name, **settings)


def _at_least(n: float) -> Callable[[float], bool]:
    return lambda v: v >= n


def _above(n: float) -> Callable[[float], bool]:
    return lambda v: v > n


_POSITIVE_INT = dict(check=_at_least(1), must="an integer >= 1")


@dataclass(frozen=True)
class DataConfig(Settings):
    PANEL: ClassVar[str] = "Data"

    dataset: str = setting("synthetic", "Dataset: synthetic (LEAF Synthetic(alpha, beta), generated from the seed), "
                           "or, read from --data-dir: cifar10, cifar100, cifar100-coarse (its 20 superclasses), "
                           "mnist, fmnist, femnist (LEAF), shakespeare (LEAF; with --model lstm).")
    data_dir: str | None = setting(None, "Folder holding the dataset's files [default: for fmnist "
                                   "/usr/share/datasets/fashion-mnist where present, else data/<dataset>].", path=True)
    cache_dir: str | None = setting(None, "Where decoded datasets are cached [default: $XDG_CACHE_HOME/fedmr-ray, "
                                    "else ~/.cache/fedmr-ray].", path=True)
    partition: str | None = setting(None, "How the training samples are split among the clients: iid, dirichlet "
                                    "(label skew, see --alpha), shards (--shards-per-client label-sorted shards each, "
                                    "drawn at random), the reference's non-IID cases 1-4 on 100 label-sorted shards "
                                    "(one-label: one shard each; two-labels: one half-shard from each half of the "
                                    "labels; one-label-80, one-label-50: 80% or 50% of one shard, the rest drawn from "
                                    "the remainders of every shard), or natural (the dataset's own users) [default: "
                                    "natural for synthetic, femnist and shakespeare, else dirichlet].")
    alpha: float = setting(0.5, "Dirichlet partition: concentration; lower gives more label skew.",
                           check=_above(0), must="> 0")
    shards_per_client: int = setting(2, "Shards partition: shards per client.", **_POSITIVE_INT)
    min_samples: int = setting(10, "Dirichlet partition: redraw until every client holds this many samples.",
                               **_POSITIVE_INT)
    partition_file: str | None = setting(None, "Read the partition from a file: a run's partition.parquet (client_id, "
                                         "sample_index), or JSON mapping client id -> list of sample indices (the "
                                         "reference's format).", path=True)
    normalise: str = setting("reference", "Model inputs of the real datasets: reference (each dataset's, as the "
                             "reference's get_dataset: CIFAR-10 (x - 0.5) / 0.5; CIFAR-100 mean (0.4914, 0.4822, "
                             "0.4465), std (0.2023, 0.1994, 0.2010); MNIST mean 0.1307, std 0.3081; Fashion-MNIST x "
                             "in [0, 1]; FEMNIST (0.5 - x) / 0.5) or half ((x - 0.5) / 0.5 for all, FEMNIST's x "
                             "inverted first).", check=lambda v: v in ("reference", "half"), must="reference or half")
    femnist_test: str = setting("clients", "FEMNIST and Shakespeare (LEAF): the test set: clients (the test "
                                "samples of the writers that are clients, as the reference; every training "
                                "writer's under a partition other than natural) or all (every test writer's "
                                "samples).",
                                check=lambda v: v in ("clients", "all"), must="clients or all")
    augment: bool = setting(False, "CIFAR: augment the training images with random crops (4-pixel padding) and "
                            "horizontal flips.")
    # LEAF Synthetic(alpha, beta): alpha spreads the clients' models, beta their inputs
    synthetic_alpha: float = setting(1.0, "Synthetic: alpha, how much the clients' models differ.",
                                     check=_at_least(0), must=">= 0")
    synthetic_beta: float = setting(1.0, "Synthetic: beta, how much the clients' inputs differ.",
                                    check=_at_least(0), must=">= 0")
    synthetic_labels: str = setting("shared", "Synthetic: per-client (LEAF: each client labels with its own "
                                    "model, spread by alpha) or shared (one labelling model for all, so one global "
                                    "model fits every client; the inputs still differ by beta, and so the label "
                                    "mixes).", check=lambda v: v in ("per-client", "shared"),
                                    must="per-client or shared")


@dataclass(frozen=True)
class TrainConfig(Settings):
    PANEL: ClassVar[str] = "Local training"

    local_epochs: int = setting(5, "Local epochs per round.", **_POSITIVE_INT)
    batch_size: int = setting(50, "Local batch size.", **_POSITIVE_INT)
    lr: float = setting(0.01, "SGD learning rate.", check=_above(0), must="> 0")
    momentum: float = setting(0.5, "SGD momentum (a fresh optimizer every round).",
                              check=lambda v: 0 <= v < 1, must="in [0, 1)")
    weight_decay: float = setting(0.0, "SGD weight decay.", check=_at_least(0), must=">= 0")
    # clients an executor trains at once, where that gives the numbers of one by one (train/lanes.py)
    client_batch: int = setting(16, "Clients an executor trains at once, each step vectorised over them, where that "
                                "gives the same numbers as one by one (checked at start; small models without dropout "
                                "or BatchNorm); 1 trains them one by one.", **_POSITIVE_INT)

    def local_steps(self, num_samples: Any) -> Any:
        """Local SGD steps of a client with this many samples (the last batch of an epoch is short)."""
        return self.local_epochs * -(-num_samples // self.batch_size)


@dataclass(frozen=True)
class RuntimeConfig(Settings):
    """Where and on what the run executes: never what it computes."""

    PANEL: ClassVar[str] = "Ray"

    num_actors: int | None = setting(None, "Executor actors [default: as many as the cluster's resources hold, at "
                                     "most one per sampled client].", **_POSITIVE_INT)
    max_actors: int | None = setting(None, "Elastic pool: grow to this many executors, asking the cluster for them (an "
                                     "autoscaler adds nodes for the ones that do not fit) [default: as many as fit, "
                                     "following the cluster as it grows and shrinks].", **_POSITIVE_INT)
    cpus_per_actor: float = setting(1.0, "CPUs per executor; torch threads follow it.", check=_above(0), must="> 0")
    gpus_per_actor: float = setting(0.0, "GPUs per executor, fractional; > 0 trains on CUDA (CPU where none is "
                                    "visible).", check=_at_least(0), must=">= 0",
                                    also=((lambda v: v <= 1 or v == int(v), "a fraction in [0, 1] or a whole number"),))
    address: str | None = setting(None, "Ray cluster to connect to, as host:port of its head (GCS) [default: "
                                  "RAY_ADDRESS, else a local Ray with this machine's CPUs]. Ray Client (ray://) is "
                                  "not supported: submit the command with `ray job submit` instead.")
    connect_timeout: float = setting(60.0, "Seconds to wait for the cluster at --address (or RAY_ADDRESS) to "
                                     "answer before giving up.", check=_above(0), must="> 0")

    @property
    def threads(self) -> int:
        """torch's intra-op threads of an executor (and of a --serial run, so that it computes the same)."""
        return max(1, int(self.cpus_per_actor))


RUN, OUTPUT = "Run", "Output"


@dataclass(frozen=True)
class SimulationConfig(Settings):
    clients: int = setting(1000, "Number of simulated clients.", panel=RUN, **_POSITIVE_INT)
    fraction: float = setting(0.1, "Fraction of clients sampled per round, in (0, 1]; K = max(1, int(fraction x "
                              "clients)).", panel=RUN, check=lambda v: 0 < v <= 1, must="in (0, 1]")
    rounds: int = setting(150, "Communication rounds.", panel=RUN, **_POSITIVE_INT)
    eval_every: int = setting(10, "Evaluate the global model every N rounds (and after the last).", panel=RUN,
                              **_POSITIVE_INT)
    client_eval_every: int = setting(0, "Also evaluate the global model (and FedMR's K models) on each client's "
                                     "held-out split every N rounds and after the last (0: never): mean, std and worst "
                                     "10% over the clients in metrics.parquet.", panel=RUN, check=_at_least(0),
                                     must="an integer >= 0")
    seed: int = setting(0, "Seed of every random number (data, init, sampling, training, recombination).",
                        panel=RUN, check=_at_least(0), must="an integer >= 0")
    model: str = setting("mlp", "Model: mlp, cnn (the reference's for the dataset: cnn-mnist on mnist, cnn-femnist "
                         "on femnist, cnn-cifar elsewhere), cnn-cifar, cnn-mnist, cnn-femnist, resnet20, vgg16, "
                         "lstm (the reference's CharLSTM, for shakespeare) "
                         "(`fedmr-ray models` lists them with their sizes), or package.module:factory, a "
                         "factory(num_classes, input_shape) -> nn.Module of your own.", panel=RUN)
    output: str | None = setting(None, "Run directory [default: runs/<timestamp>-<algorithm>].", panel=OUTPUT)
    checkpoint_every: int = setting(0, "Write a checkpoint into the run directory every N rounds (0: only when "
                                    "interrupted with Ctrl-C).", panel=OUTPUT, check=_at_least(0),
                                    must="an integer >= 0")
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def cohort_size(self) -> int:
        """K: the clients sampled per round, and the number of models FedMR keeps."""
        return max(1, int(self.fraction * self.clients))

    def is_eval_round(self, round_index: int) -> bool:
        """Rounds are 0-based here; evaluation follows the reference (round % 10 == 9) and the last."""
        return (round_index + 1) % self.eval_every == 0 or round_index + 1 == self.rounds

    def results_dict(self) -> dict[str, Any]:
        """The settings that decide the numbers: not where or on what the run executes, where it
        writes, how long it runs or how often it checkpoints."""
        return {k: v for k, v in self.to_dict().items() if k not in ("runtime", "output", "rounds", "checkpoint_every")}
