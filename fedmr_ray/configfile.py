"""Every setting by its flat name, and configurations from files.

The settings are derived from the configuration's declarations: SimulationConfig's and its
sections' (fedmr_ray/config.py) and every algorithm's own Settings (algorithms/<name>.py). Each has
a flat name (`alpha`, `lr`, `algorithm`, `mu`), unique across sections, which is its command-line
flag (--alpha), a key a config file may give at its top level, and a sweep's grid key; and a place
in the configuration (data.alpha), where config.json and config files' tables put it.

`Sources` builds a configuration from a file's settings with others given over them (the command
line's flags), and names a bad setting the way it came: by its flag, or by the file and its key.
"""

from __future__ import annotations

import functools
import json
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from fedmr_ray.algorithms import registry, settings_class
from fedmr_ray.config import SimulationConfig, flag_of
from fedmr_ray.errors import ConfigError, SettingError, one_line
from fedmr_ray.storage import is_uri
from fedmr_ray.results import PROVENANCE

PANELS = ("Run", "Algorithm", "Local training", "Data", "Ray", "Output")
SECTIONS = ("data", "train", "runtime")  # SimulationConfig's sections of plain settings
CONFIG_SUFFIXES = (".toml", ".json", ".yaml", ".yml")


@dataclass(frozen=True)
class Setting:
    """A setting by its flat name: where it sits in a configuration, its flag, type, default, help
    and help panel."""

    name: str  # its flat name: a config file's key at the top, a sweep's grid key, the command's parameter
    key: tuple[str, ...]  # where the setting sits in the configuration
    option: str  # the flag
    type: Any
    default: Any
    help: str
    panel: str
    path: bool = False  # a file or folder: made absolute
    show_default: bool = True
    accepted: str = ""  # the values it accepts, in words, where it names a thing (shown in --help)


def _choices() -> dict[str, str]:
    """What the settings that name a thing accept, from the registries."""
    from fedmr_ray.data.catalog import DATASETS, PARTITIONS
    from fedmr_ray.models import CUSTOM, MODELS

    return {"dataset": ", ".join(DATASETS), "partition": ", ".join(PARTITIONS), "model": ", ".join([*MODELS, CUSTOM])}


def _accepted(f: Any, hint: Any) -> str:
    """What a string setting accepts: its declaration's own words (granularity's `must`)."""
    if hint not in (str, str | None):
        return ""
    return "; ".join(must for _, must in f.metadata.get("checks", ()))


def _flags_of(cls: type, section: tuple[str, ...], panel: str, skip: Iterable[str] = ()) -> list[Setting]:
    hints, choices = typing.get_type_hints(cls), _choices()
    return [Setting(f.name, (*section, f.name), flag_of(f), hints[f.name], f.default, f.metadata["help"],
                 f.metadata.get("panel") or panel, f.metadata.get("path", False),
                 accepted=choices.get(f.name) or _accepted(f, hints[f.name]))
            for f in fields(cls) if f.name not in skip]


def _algorithm_flags() -> list[Setting]:
    """--algorithm, and one flag per setting name of any algorithm: a name two algorithms share
    (MOON's and FedProx's mu) is one flag, whose default is each algorithm's own."""
    names = list(registry())
    settings: dict[str, list[tuple[str, Any, Any]]] = {}
    for name in names:
        cls = settings_class(name)
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            settings.setdefault(f.name, []).append((name, f, hints[f.name]))
    flags = [Setting("algorithm", ("algorithm", "name"), "--algorithm", str, "fedmr",
                  "The algorithm: FedMR or one of the baselines, each with its settings below.", "Algorithm",
                  accepted=", ".join(names))]
    for setting, owners in settings.items():
        kinds = {hint for _, _, hint in owners}
        if len(kinds) > 1:
            raise ConfigError(f"algorithms {', '.join(n for n, _, _ in owners)} declare the setting {setting} with "
                              f"different types ({', '.join(map(str, kinds))}): one flag cannot serve them")
        helps = " ".join(f"{f.metadata['help']} [default: {f.default}]" for _, f, _ in owners)
        _, first, hint = owners[0]
        flags.append(Setting(setting, ("algorithm", setting), flag_of(first), hint | None, None, helps, "Algorithm",
                          show_default=False, accepted=_accepted(first, hint)))
    return flags


def all_settings() -> tuple[Setting, ...]:
    """Every setting, in the order of the help's panels; each name once."""
    return _all_settings(tuple(registry().items()))


@functools.cache
def _all_settings(algorithms: tuple[tuple[str, str], ...]) -> tuple[Setting, ...]:
    flags = _flags_of(SimulationConfig, (), "Run", skip=(*SECTIONS, "algorithm"))
    flags += _algorithm_flags()
    for section in SECTIONS:
        cls = typing.get_type_hints(SimulationConfig)[section]
        flags += _flags_of(cls, (section,), cls.PANEL)
    names = [flag.name for flag in flags]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise ConfigError(f"settings named alike in two places: {', '.join(sorted(duplicated))}")
    return tuple(sorted(flags, key=lambda flag: PANELS.index(flag.panel)))


def read_config_file(path: Path, option: str = "--config") -> dict[str, Any]:
    """A config file's settings: TOML, JSON (a run's config.json: its provenance is left out) or
    YAML, by the file's suffix; `option` names the file in errors."""
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"{option} {path}: accepted files are {', '.join(CONFIG_SUFFIXES)}")
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{option} {path}: cannot read it ({err.strerror or type(err).__name__})") from None
    try:
        if suffix == ".toml":
            raw = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{option} {path}: not valid {suffix[1:].upper()} ({one_line(err)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{option} {path}: expected a table of settings at the top")
    raw.pop(PROVENANCE, None)
    return raw


def absolute(path: str) -> str:
    """A local path made absolute; a URI (s3://...) as it is."""
    return path if is_uri(path) else str(Path(path).expanduser().absolute())


def nested(raw: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A file's settings where they sit in a configuration: settings given by their flat name at
    the top (`alpha = 0.1`, `algorithm = "fedavg"`) moved into their tables (data.alpha,
    algorithm.name); and, per key so placed, the name the file gave it by. A setting given twice
    (`alpha` and [data] alpha) is a ConfigError; an unknown key is left for the configuration to
    refuse."""
    by_name = {setting.name: setting for setting in all_settings()}
    own = {f.name for f in fields(SimulationConfig)}
    out: dict[str, Any] = {}
    written: dict[str, str] = {}

    def put(key: tuple[str, ...], value: Any, name: str) -> None:
        table = out
        for part in key[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: {part} is given as a value and as a table")
        if key[-1] in table:
            raise ConfigError(f"{where}: {'.'.join(key)} is given twice (as {written['.'.join(key)]} and {name})")
        table[key[-1]] = value
        written[".".join(key)] = name

    for key, value in raw.items():
        if key in own and isinstance(value, Mapping):  # a table: its keys where they are
            for inner, item in value.items():
                put((key, inner), item, f"{key}.{inner}")
        elif key in by_name:  # SimulationConfig's own, or a section's setting by its flat name
            put(by_name[key].key, value, key)
        else:
            put((key,), value, key)
    return out, written


class Sources:
    """Where a configuration's settings come from: a config file (or `base`, settings to start
    from) and settings given over them by flat name (the command line's flags). A setting that
    turns out bad is named as it came: by its flag, or by the file and the key the file gave."""

    def __init__(self, settings: Iterable[Setting], params: dict[str, Any], given: set[str],
                 file: Path | None = None, base: dict[str, Any] | None = None):
        self.file = file
        self.written: dict[str, str] = {}
        if file is not None:
            self.raw, self.written = nested(read_config_file(file), str(file))
        else:
            self.raw = dict(base or {})
        self.from_flags: set[str] = set()
        for setting in settings:
            if setting.name not in given:
                continue
            value = params[setting.name]
            if setting.path and value is not None:
                value = absolute(value)
            self.put(setting.key, value)
            self.from_flags.add(".".join(setting.key))

    def put(self, key: tuple[str, ...], value: Any) -> None:
        table = self.raw
        for part in key[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{self.file}: {part}: expected a table of settings")
        table[key[-1]] = value

    def has(self, *key: str) -> bool:
        table = self.raw
        for part in key:
            if not isinstance(table, dict) or part not in table:
                return False
            table = table[part]
        return True

    def config(self) -> SimulationConfig:
        return SimulationConfig.from_dict(self.raw)

    def named(self, err: ConfigError) -> ConfigError:
        """The error, naming its setting by the file and key where the file gave it."""
        if self.file is not None and isinstance(err, SettingError) and err.key not in self.from_flags \
                and self.has(*err.key.split(".")):
            return err.in_file(str(self.file), self.written.get(err.key, err.key))
        return err
