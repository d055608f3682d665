"""Command-line options derived from the settings' declarations (:mod:`dbsnaplake.config.settings`): each
setting's flag, help, choices and default come from its field; values are checked and converted by the same
field, so a flag and its TOML key behave alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from dbsnaplake.config.settings import SettingField, setting_fields

F = TypeVar("F", bound=Callable[..., Any])


def _option(f: SettingField) -> Callable[[F], F]:
    assert f.flag is not None
    shown = f.shown_default()
    help_text = f.spec.help + (f" [default: {shown}]" if shown else "")
    choices = f.choices
    kind: Any = click.Choice(choices) if choices else None
    return click.option(f.flag, f.name, default=None, type=kind, help=help_text, metavar=f.spec.metavar)


def setting_options(*classes: type, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorate a command with an option per setting of ``classes`` (every option defaults to "not given")."""
    fields = [f for f in setting_fields(*classes) if f.flag is not None and f.name not in exclude]

    def decorate(function: F) -> F:
        for f in reversed(fields):
            function = _option(f)(function)
        return function

    return decorate


def given_settings(options: dict[str, Any], *classes: type) -> dict[str, Any]:
    """Pop the settings of ``classes`` out of a command's ``options``: those given, checked and converted."""
    given = {}
    for f in setting_fields(*classes):
        value = options.pop(f.name, None)
        if value is not None:
            given[f.name] = f.parse(value, f.flag_name or f.name)
    return given
