"""Sweeps: an experiment table as one file, planned into trials.

A sweep file (TOML, JSON or YAML) holds:

    [base]        the settings every trial shares: a config file's keys (flat names or tables)
    [grid]        flat setting names -> lists of values; every combination is a trial
    [[runs]]      optional explicit variants (tables of flat names), each crossed with the grid:
                  settings that only some algorithms have go here (FedMR's first_stage_bound)
    [resources]   per trial: executors, cpus_per_executor, gpus_per_executor

A trial is named after the values that make it (`algorithm=fedmr,alpha=0.1,seed=0`), and its run
directory is that name inside the sweep's directory. The plan is checked whole before anything
runs: a bad key or value is one ConfigError naming the file, where the value came from and what
is accepted. Running the trials is runtime/tune.py's.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedmr_ray.config import Settings, SimulationConfig, setting
from fedmr_ray.configfile import all_settings, nested, read_config_file
from fedmr_ray.data import load_partition
from fedmr_ray.errors import ConfigError, SettingError, show
from fedmr_ray.results import RunDirectory
from fedmr_ray.setup import check

PLAN = "sweep.json"  # the planned sweep, in its directory: what --resume and the report read
SECTIONS = ("base", "grid", "runs", "resources")
# settings a sweep sets itself: where each trial writes, and how it runs (from [resources])
OWNED = {"output": "each trial writes into the sweep's directory, under its name",
         "num_actors": "give executors in [resources]", "cpus_per_actor": "give cpus_per_executor in [resources]",
         "gpus_per_actor": "give gpus_per_executor in [resources]", "address": "give --address to fedmr-ray sweep",
         "connect_timeout": "the sweep connects once, with --address",
         "max_actors": "a trial's executors are fixed by [resources]"}
CHECKPOINT_EVERY = 10  # rounds between a trial's checkpoints, unless [base] says otherwise


@dataclass(frozen=True)
class Resources(Settings):
    """What each trial reserves (a placement group): its executors, each with these CPUs and GPUs."""

    executors: int = setting(1, "Executors of each trial.", check=lambda v: v >= 1, must="an integer >= 1",
                             flag="executors")
    cpus_per_executor: float = setting(1.0, "CPUs of each executor.", check=lambda v: v > 0, must="> 0",
                                       flag="cpus_per_executor")
    gpus_per_executor: float = setting(0.0, "GPUs of each executor, fractional.",
                                       check=lambda v: v >= 0 and (v <= 1 or v == int(v)),
                                       must="a fraction in [0, 1] or a whole number", flag="gpus_per_executor")


@dataclass(frozen=True)
class Trial:
    name: str  # the values that make it, "key=value,...": its folder in the sweep's directory
    values: dict[str, Any]  # those values, by flat setting name
    config: SimulationConfig  # checked; its output is its folder

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": self.values, "config": self.config.to_dict()}

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output)

    def rooted(self, directory: Path) -> Trial:
        """The same trial writing under `directory` (its sweep's directory wherever that now is)."""
        output = str(directory.absolute() / self.name)
        return Trial(self.name, self.values, dataclasses.replace(self.config, output=output))

    def metrics(self) -> list[dict[str, Any]]:
        """Its metrics rows so far (none where it has not evaluated a round yet)."""
        return RunDirectory(self.run_dir).metrics()

    def finished(self) -> bool:
        """Whether its run directory holds a finished run (every round, and the final model)."""
        return RunDirectory(self.run_dir).finished(self.config.rounds)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Trial:
        return cls(raw["name"], dict(raw["values"]), SimulationConfig.from_dict(raw["config"]))


@dataclass(frozen=True)
class Sweep:
    trials: tuple[Trial, ...]
    keys: tuple[str, ...]  # the flat names whose values vary between trials (grid and runs), in order
    resources: Resources = field(default_factory=Resources)
    source: str = ""  # the file it was planned from

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "keys": list(self.keys), "resources": self.resources.to_dict(),
                "trials": [trial.to_dict() for trial in self.trials]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Sweep:
        return cls(tuple(Trial.from_dict(t) for t in raw["trials"]), tuple(raw["keys"]),
                   Resources.from_dict(raw["resources"]), raw.get("source", ""))

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{PLAN}.tmp"
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(directory / PLAN)


def read_plan(directory: Path) -> Sweep:
    """The sweep planned in this directory (by `fedmr-ray sweep`), its trials' run directories in
    it: a sweep's directory moved or copied elsewhere (another checkout, a pod's volume) is read and
    resumed where it now is."""
    try:
        sweep = Sweep.from_dict(json.loads((directory / PLAN).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{directory}: no readable {PLAN} of a fedmr-ray sweep in it ({type(err).__name__})") from None
    return dataclasses.replace(sweep, trials=tuple(trial.rooted(directory) for trial in sweep.trials))


def folder_name(values: Mapping[str, Any]) -> str:
    """`key=value,...`, with any character a folder name should not hold replaced by '_'."""
    text = ",".join(f"{key}={value}" for key, value in values.items()) or "base"
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def plan(raw: Mapping[str, Any], where: str, directory: Path) -> Sweep:
    """The trials of a sweep file's content (`where` names the file in errors), each writing into
    `directory`/<its name>; every trial's configuration checked as `simulate` checks it (its data
    aside: `check_data`)."""
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]}: unknown table; a sweep file holds {', '.join(SECTIONS)}")
    names = {s.name: s for s in all_settings()}
    base, written = nested(_table(raw, "base", where), f"{where}: [base]")
    for name in OWNED:
        key = names[name].key
        if _has(base, key):
            raise ConfigError(f"{where}: [base] {written['.'.join(key)]}: not accepted in a sweep: {OWNED[name]}")
    grid = _table(raw, "grid", where)
    for name, values in grid.items():
        _check_name(name, names, where, "[grid]")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: [grid] {name} = {show(values)}: must be a non-empty list of values")
    runs = raw.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(run, Mapping) for run in runs):
        raise ConfigError(f"{where}: runs: must be a list of tables ([[runs]])")
    for i, run in enumerate(runs):
        for name in run:
            _check_name(name, names, where, f"[[runs]] {i + 1}")
    try:
        resources = Resources.from_dict(_table(raw, "resources", where))
    except SettingError as err:
        raise err.in_file(where, f"[resources] {err.key}") from None
    keys = tuple(dict.fromkeys([*(name for run in runs for name in run), *grid]))
    if not _has(base, ("checkpoint_every",)):
        base["checkpoint_every"] = CHECKPOINT_EVERY
    base.setdefault("runtime", {}).update(num_actors=resources.executors, cpus_per_actor=resources.cpus_per_executor,
                                           gpus_per_actor=resources.gpus_per_executor)
    trials: dict[str, Trial] = {}
    for r, run in enumerate(runs or [{}]):
        for combination in itertools.product(*grid.values()):
            values = {**run, **dict(zip(grid, combination))}
            ordered = {key: values[key] for key in keys if key in values}
            name = folder_name(ordered)
            if name in trials:
                raise ConfigError(f"{where}: two trials are both {name}: the grid and [[runs]] give the same values twice")
            given = {".".join(names[key].key): (f"[[runs]] {r + 1} {key}" if key in run and key not in grid
                                                else f"[grid] {key}") for key in values}
            over: dict[str, Any] = {}
            for key, value in values.items():
                _put(over, names[key].key, value)
            config = _trial_config(_merge(base, {**over, "output": str(directory / name)}), where, name, given, written)
            trials[name] = Trial(name, ordered, config)
    return Sweep(tuple(trials.values()), keys, resources, where)


def _trial_config(raw: dict[str, Any], where: str, name: str, given: dict[str, str],
                  written: dict[str, str]) -> SimulationConfig:
    """The trial's configuration, checked; a bad value named by where it came from."""
    try:
        return check(SimulationConfig.from_dict(raw))
    except SettingError as err:
        source = given.get(err.key) or (f"[base] {written[err.key]}" if err.key in written else None)
        if source is None:
            raise ConfigError(f"{where}: trial {name}: {err}") from None
        raise ConfigError(f"{err.in_file(where, source)} (trial {name})") from None
    except ConfigError as err:
        raise ConfigError(f"{where}: trial {name}: {err}") from None


def _table(raw: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: {name}: must be a table ([{name}])")
    return dict(table)


def _check_name(name: str, names: Mapping[str, Any], where: str, place: str) -> None:
    if name not in names:
        raise ConfigError(f"{where}: {place} {name}: unknown setting; accepted: the flat names of "
                          f"`fedmr-ray simulate`'s settings ({', '.join(list(names)[:8])}, ...)")
    if name in OWNED:
        raise ConfigError(f"{where}: {place} {name}: not accepted in a sweep: {OWNED[name]}")


def _has(table: Mapping[str, Any], key: tuple[str, ...]) -> bool:
    for part in key:
        if not isinstance(table, Mapping) or part not in table:
            return False
        table = table[part]
    return True


def _put(table: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    for part in key[:-1]:
        table = table.setdefault(part, {})
    table[key[-1]] = value


def read_sweep(path: Path, directory: Path) -> Sweep:
    """The sweep a file describes, its trials writing into `directory`."""
    return plan(read_config_file(path, option="sweep"), str(path), directory)


def check_data(sweep: Sweep) -> None:
    """Every trial's data can be read and split (once per distinct dataset, clients and seed; a
    dataset seen for the first time is decoded and cached here)."""
    seen = set()
    for trial in sweep.trials:
        config = trial.config
        key = (config.data, config.clients, config.seed)
        if key not in seen:
            seen.add(key)
            try:
                load_partition(config)
            except ConfigError as err:
                raise ConfigError(f"{sweep.source}: trial {trial.name}: {err}") from None
