"""Federated algorithms: pure server-side logic over lists of entries, and the trainer's local hooks
(train/hooks.py) implemented in plain torch; no Ray here.

An algorithm is a module with `make(ctx: AlgorithmContext) -> Algorithm` and, where it has
settings of its own, `Settings`: a frozen `fedmr_ray.config.Settings` declaring their types,
defaults, help and accepted values, from which `fedmr-ray simulate`'s flags and the `[algorithm]`
keys of config files and config.json are derived. Adding one is its module and a line in BUILTIN;
another package adds one without editing this one through an entry point of the group
`fedmr_ray.algorithms` naming its module:

    [project.entry-points."fedmr_ray.algorithms"]
    myalgo = "mypackage.myalgo"
"""

from __future__ import annotations

import functools
import importlib
import sys
from dataclasses import fields
from importlib.metadata import entry_points
from types import ModuleType

from fedmr_ray.config import AlgorithmConfig, ConfigError, SettingError, Settings, UnknownKey, one_line

ENTRY_POINTS = "fedmr_ray.algorithms"
BUILTIN = {
    "fedmr": "fedmr_ray.algorithms.fedmr",
    "fedavg": "fedmr_ray.algorithms.fedavg",
    "fedprox": "fedmr_ray.algorithms.fedprox",
    "scaffold": "fedmr_ray.algorithms.scaffold",
    "moon": "fedmr_ray.algorithms.moon",
    "fedgen": "fedmr_ray.algorithms.fedgen",
    "clusamp": "fedmr_ray.algorithms.clusamp",
    "fedindep": "fedmr_ray.algorithms.fedindep",
    "fedmut": "fedmr_ray.algorithms.fedmut",
    "fedexp": "fedmr_ray.algorithms.fedexp",
    "fedasam": "fedmr_ray.algorithms.fedasam",
}
ALGORITHMS = tuple(BUILTIN)


@functools.cache
def registry() -> dict[str, str]:
    """Every algorithm's name -> its module: the built-in ones, then those of installed packages'
    entry points (a built-in name cannot be taken)."""
    found = dict(BUILTIN)
    for point in entry_points(group=ENTRY_POINTS):
        if point.name in found:
            print(f"fedmr-ray: warning: entry point {point.name} = {point.value} ignored: {point.name} is "
                  f"{'built in' if point.name in BUILTIN else 'registered already'}", file=sys.stderr)
            continue
        found[point.name] = point.value
    return found


def algorithm_module(name: str) -> ModuleType:
    modules = registry()
    if name not in modules:
        raise SettingError("algorithm.name", "--algorithm", name, f"accepted values are: {', '.join(modules)}")
    try:
        module = importlib.import_module(modules[name])
    except Exception as err:  # a plug-in's import error is its author's to see
        raise ConfigError(f"--algorithm {name}: cannot import {modules[name]} ({type(err).__name__}: "
                          f"{one_line(err)})") from None
    if not callable(getattr(module, "make", None)):
        raise ConfigError(f"--algorithm {name}: {modules[name]} has no make(ctx) function")
    return module


def settings_class(name: str) -> type[Settings]:
    from fedmr_ray.algorithms.base import NoSettings

    return getattr(algorithm_module(name), "Settings", NoSettings)


def settings_of(config: AlgorithmConfig) -> Settings:
    """The algorithm's own settings, typed and checked: those given, the declared defaults for
    the rest; a setting the algorithm does not have is a ConfigError."""
    cls = settings_class(config.name)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(config.settings) - set(known))
    if unknown:
        has = f"its settings are {', '.join(known)}" if known else "it has no settings of its own"
        raise UnknownKey(f"algorithm.{unknown[0]}", "--" + unknown[0].replace("_", "-"),
                         problem=f"not a setting of algorithm {config.name} ({has})", known=tuple(known))
    try:
        return cls(**config.settings)
    except SettingError as err:
        raise err.within("algorithm") from None


def complete(config: AlgorithmConfig) -> AlgorithmConfig:
    """The same algorithm with every one of its settings written out (config.json records these)."""
    return AlgorithmConfig(config.name, **settings_of(config).to_dict())
