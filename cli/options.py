"""`fedmr-ray simulate`'s flags as typer parameters: one per setting (fedmr_ray/configfile.py), with
its type, default, help and panel."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Annotated

import typer

from fedmr_ray.configfile import Setting


def parameter(flag: Setting) -> inspect.Parameter:
    """The flag as a typer parameter."""
    option = flag.option
    if bool in (flag.type, *typing.get_args(flag.type)):
        option = f"{flag.option}/--no-{flag.option.removeprefix('--')}"
    help_text = flag.help + (f" [accepted: {flag.accepted}]" if flag.accepted else "")
    info = typer.Option(option, help=help_text.replace("[", "\\["), rich_help_panel=flag.panel,
                        show_default=flag.show_default)
    return inspect.Parameter(flag.name, inspect.Parameter.KEYWORD_ONLY, default=flag.default,
                             annotation=Annotated[flag.type, info])


def with_parameters(command: Callable, parameters: list[inspect.Parameter]) -> Callable:
    """`command`, taking these parameters (typer reads them off its signature) besides a typer.Context."""
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    command.__signature__ = inspect.Signature([context, *parameters])
    return command


