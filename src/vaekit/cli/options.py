"""Command-line options generated from the config fields (vaekit.config), and small parsers.

    @app.command()
    @config_options(ModelConfig, TrainConfig, DataConfig, exclude={"beta"})
    def train(data: str = ..., *, options: dict) -> None: ...

adds one option per field (its flag, type, help and "(default: ...)" from the field) to the
command's own parameters; the command receives the options the user gave, parsed to the
field's type, as `options` (name -> value). Validation stays with the config.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any, Optional

import typer

from ..config import STRUCTURED, cli_fields, describe_default, field_type, option_flag, structured
from ..errors import VaekitError

PANELS = {"ModelConfig": "Model", "TrainConfig": "Training", "DataConfig": "Data"}


def int_list(text: str | None, what: str) -> list[int] | None:
    """ "512,256" -> [512, 256]."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VaekitError(f"{what} must be comma-separated integers such as 32,64, not {text!r}") from None


def float_list(text: str, what: str) -> list[float]:
    """ "0.8,0.5" -> [0.8, 0.5]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise VaekitError(f"{what} must be comma-separated numbers such as 0.8,0.5, not {text!r}") from None


def name_list(text: str | None, what: str) -> list[str] | None:
    """ "a, b" -> ["a", "b"]."""
    if text is None:
        return None
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise VaekitError(f"{what} needs at least one name")
    return names


def _cli_type(kind: Any) -> Any:
    """The type typer parses an option as: numbers and flags natively, the rest as text."""
    return kind if kind in (int, float, bool) else str


def _parser(f: dataclasses.Field, kind: Any) -> Callable[[Any], Any]:
    """Text from the command line -> the field's value (lists and structured values)."""
    where = option_flag(f)
    if kind in STRUCTURED:
        return lambda text: structured(text, kind, where)
    if getattr(kind, "__origin__", None) is list:
        if typing.get_args(kind) == (str,):
            return lambda text: name_list(text, where)
        return lambda text: int_list(text, where)
    return lambda value: value


def _option(
    section: type, f: dataclasses.Field, default_text: str | None
) -> tuple[inspect.Parameter, Callable[[Any], Any]]:
    kind, _ = field_type(section, f.name)
    help_text = f"{f.metadata['help']} (default: {default_text or describe_default(f)})"
    flag = option_flag(f)
    decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
    info = typer.Option(None, *decls, help=help_text, show_default=False, rich_help_panel=PANELS[section.__name__])
    param = inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=Optional[_cli_type(kind)]
    )
    return param, _parser(f, kind)


def config_options(
    *sections: type, exclude: Iterable[str] = (), only: Iterable[str] | None = None, default_text: str | None = None
) -> Callable:
    """Decorate a command whose last parameter is `options`: see the module docstring. exclude /
    only: which fields become options; default_text: what --help says the default of every one
    is, when it is not the field's (e.g. "the run's")."""
    excluded = set(exclude)
    wanted = None if only is None else set(only)

    def decorate(command: Callable) -> Callable:
        hints = typing.get_type_hints(command)  # the command's own annotations, resolved in its module
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in inspect.signature(command).parameters.values()
            if p.name != "options"
        ]
        taken = {"--" + p.name.replace("_", "-") for p in own}  # flags the command declares itself
        generated, parsers = [], {}
        for section in sections:
            for f in cli_fields(section):
                if f.name in excluded or option_flag(f) in taken or (wanted is not None and f.name not in wanted):
                    continue
                param, parse = _option(section, f, default_text)
                generated.append(param)
                parsers[f.name] = parse

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            options = {
                name: parsers[name](kwargs.pop(name))
                for name in list(kwargs)
                if name in parsers and kwargs[name] is not None
            }
            for name in parsers:
                kwargs.pop(name, None)
            return command(**kwargs, options=options)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + generated
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate
