"""The errors a user sees: one line naming the bad value and what is accepted. A leaf: imports
nothing of the package, so every floor can raise them (and check a path that a run writes)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A user error in the configuration: one line, naming the value and what is accepted."""


_NONE = object()


class SettingError(ConfigError):
    """A ConfigError about one setting. `key` is where the setting sits in the configuration
    ("train.lr"), `flag` the command-line flag that sets it (--lr), `problem` what is wrong with
    its value ("must be > 0"). The message names the setting by its flag; `in_file` names it by
    its key in a config file instead."""

    def __init__(self, key: str, flag: str, value: Any = _NONE, problem: str = "", *, quote: bool = True):
        self.key, self.flag, self.value, self.problem, self.quote = key, flag, value, problem, quote
        super().__init__(self._named(flag))

    def _named(self, name: str) -> str:
        if self.value is _NONE:
            return f"{name}: {self.problem}"
        return f"{name} {show(self.value) if self.quote else self.value}: {self.problem}"

    def within(self, section: str) -> SettingError:
        """The same error, its key inside `section` of the configuration."""
        return type(self)(f"{section}.{self.key}", self.flag, self.value, self.problem, quote=self.quote)

    def in_file(self, file: str, key: str | None = None) -> ConfigError:
        """The same error where the setting came from a config file: named by the file and the key
        it gave (by default, where the setting sits)."""
        key = key or self.key
        if self.value is _NONE:
            return ConfigError(f"{file}: {key}: {self.problem}")
        return ConfigError(f"{file}: {key} = {show(self.value)}: {self.problem}")


def must_be(key: str, flag: str, value: Any, accepted: str) -> SettingError:
    """A value of the wrong type or out of range: '--lr 0.0: must be > 0'."""
    return SettingError(key, flag, value, f"must be {accepted}")


class UnknownKey(SettingError):
    """A key that names no setting; `known`, the ones accepted where it sits."""

    def __init__(self, key: str, flag: str = "", value: Any = _NONE, problem: str = "", *, quote: bool = True,
                 known: tuple[str, ...] = ()):
        self.known = tuple(known)
        problem = problem or f"unknown setting; accepted: {', '.join(self.known) or 'none'}"
        super().__init__(key, flag, value, problem, quote=quote)

    def _named(self, name: str) -> str:
        return f"{name or repr(self.key)}: {self.problem}"

    def within(self, section: str) -> UnknownKey:
        return UnknownKey(f"{section}.{self.key}", self.flag, problem=self.problem, known=self.known)


def show(value: Any) -> str:
    """A value as a message shows it: numbers bare, strings quoted."""
    return repr(value) if isinstance(value, str) else str(value)


def one_line(text: object, limit: int = 300) -> str:
    """Text (an exception's message, say) on one line, for a ConfigError."""
    return " ".join(str(text).split())[:limit]


def unwritable(path: str | Path) -> str | None:
    """Why `path` cannot be created (None where it can): its nearest existing folder must take a new
    entry. Tried, with a folder made and removed at once, not read off permission bits, which say
    yes to root on /proc and on a read-only mount."""
    parent = Path(path).absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fedmr-ray-check-", dir=parent))
    except OSError as err:
        return f"{parent} is not a writable directory: {err.strerror or type(err).__name__}"
    return None
