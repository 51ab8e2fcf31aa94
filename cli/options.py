"""`fedmr-ray simulate`'s flags, derived from the configuration's declarations: one flag per setting
of SimulationConfig and its sections (fedmr_ray/config.py) and of every algorithm's own Settings
(algorithms/<name>.py), with its type, default, help and panel. A config file holds the same
settings under the same names: SimulationConfig's own at the top, the others in [data], [train],
[algorithm] and [runtime], as config.json does.

`Sources` builds the configuration of a command line (the file's settings, the flags given over
them) and names a bad setting the way it came: by its flag, or by the file and its key.
"""

from __future__ import annotations

import inspect
import json
import tomllib
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from fedmr_ray.algorithms import registry, settings_class
from fedmr_ray.config import SimulationConfig, flag_of
from fedmr_ray.errors import ConfigError, SettingError, one_line
from fedmr_ray.results import PROVENANCE

PANELS = ("Run", "Algorithm", "Local training", "Data", "Ray", "Output")
SECTIONS = ("data", "train", "runtime")  # SimulationConfig's sections of plain settings
CONFIG_SUFFIXES = (".toml", ".json", ".yaml", ".yml")


@dataclass(frozen=True)
class Flag:
    """A setting as a command-line flag."""

    name: str  # the command's parameter
    key: tuple[str, ...]  # where the setting sits in the configuration
    option: str  # the flag
    type: Any
    default: Any
    help: str
    panel: str
    path: bool = False  # a file or folder: made absolute
    show_default: bool = True


def _flags_of(cls: type, section: tuple[str, ...], panel: str, skip: Iterable[str] = ()) -> list[Flag]:
    hints = typing.get_type_hints(cls)
    return [Flag(f.name, (*section, f.name), flag_of(f), hints[f.name], f.default, f.metadata["help"],
                 f.metadata.get("panel") or panel, f.metadata.get("path", False))
            for f in fields(cls) if f.name not in skip]


def _algorithm_flags() -> list[Flag]:
    """--algorithm, and one flag per setting name of any algorithm: a name two algorithms share
    (MOON's and FedProx's mu) is one flag, whose default is each algorithm's own."""
    names = list(registry())
    settings: dict[str, list[tuple[str, Any, Any]]] = {}
    for name in names:
        cls = settings_class(name)
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            settings.setdefault(f.name, []).append((name, f, hints[f.name]))
    flags = [Flag("algorithm", ("algorithm", "name"), "--algorithm", str, "fedmr",
                  f"The algorithm: {', '.join(names)}.", "Algorithm")]
    for setting, owners in settings.items():
        kinds = {hint for _, _, hint in owners}
        if len(kinds) > 1:
            raise ConfigError(f"algorithms {', '.join(n for n, _, _ in owners)} declare the setting {setting} with "
                              f"different types ({', '.join(map(str, kinds))}): one flag cannot serve them")
        helps = " ".join(f"{f.metadata['help']} [default: {f.default}]" for _, f, _ in owners)
        _, first, hint = owners[0]
        flags.append(Flag(setting, ("algorithm", setting), flag_of(first), hint | None, None, helps, "Algorithm",
                          show_default=False))
    return flags


def simulate_flags() -> list[Flag]:
    """Every setting's flag, in the order of the help's panels."""
    flags = _flags_of(SimulationConfig, (), "Run", skip=(*SECTIONS, "algorithm"))
    flags += _algorithm_flags()
    for section in SECTIONS:
        cls = typing.get_type_hints(SimulationConfig)[section]
        flags += _flags_of(cls, (section,), cls.PANEL)
    names = [flag.name for flag in flags]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise ConfigError(f"settings named alike in two places: {', '.join(sorted(duplicated))}")
    return sorted(flags, key=lambda flag: PANELS.index(flag.panel))


def parameter(flag: Flag) -> inspect.Parameter:
    """The flag as a typer parameter."""
    option = flag.option
    if bool in (flag.type, *typing.get_args(flag.type)):
        option = f"{flag.option}/--no-{flag.option.removeprefix('--')}"
    info = typer.Option(option, help=flag.help.replace("[", "\\["), rich_help_panel=flag.panel,
                        show_default=flag.show_default)
    return inspect.Parameter(flag.name, inspect.Parameter.KEYWORD_ONLY, default=flag.default,
                             annotation=Annotated[flag.type, info])


def with_parameters(command: Callable, parameters: list[inspect.Parameter]) -> Callable:
    """`command`, taking these parameters (typer reads them off its signature) besides a typer.Context."""
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    command.__signature__ = inspect.Signature([context, *parameters])
    return command


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's settings: TOML, JSON (a run's config.json: its provenance is left out) or
    YAML, by the file's suffix."""
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"--config {path}: accepted files are {', '.join(CONFIG_SUFFIXES)}")
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"--config {path}: cannot read it ({err.strerror or type(err).__name__})") from None
    try:
        if suffix == ".toml":
            raw = tomllib.loads(text)
        elif suffix == ".json":
            raw = json.loads(text)
        else:
            raw = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"--config {path}: not valid {suffix[1:].upper()} ({one_line(err)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: expected a table of settings at the top")
    raw.pop(PROVENANCE, None)
    return raw


def absolute(path: str) -> str:
    return str(Path(path).expanduser().absolute())


class Sources:
    """Where a command line's settings come from: a config file (if any) and the flags given,
    which win. A setting that turns out bad is named as it came."""

    def __init__(self, flags: list[Flag], params: dict[str, Any], given: set[str], file: Path | None = None,
                 base: dict[str, Any] | None = None):
        """`base`: settings to start from instead of a file's."""
        self.file = file
        self.raw: dict[str, Any] = read_config_file(file) if file is not None else dict(base or {})
        self.from_flags: set[str] = set()
        for flag in flags:
            if flag.name not in given:
                continue
            value = params[flag.name]
            if flag.path and value is not None:
                value = absolute(value)
            self.put(flag.key, value)
            self.from_flags.add(".".join(flag.key))

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
            return err.in_file(str(self.file))
        return err
