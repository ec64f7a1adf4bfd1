"""Typer options generated from the specs: :func:`spec_options` turns a
:class:`~thinkscope.core.spec.Spec`'s fields into a command's options (one name, one default,
one help text wherever the spec is used); :func:`field_option` lends one field to a hand-made
block; :func:`option_block` is the mechanism under both."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

import typer
from pydantic.fields import FieldInfo

from thinkscope.core.spec import Spec

OptionSpec = tuple  # (annotation, default, help) or (annotation, default, help, flag)


def option_block(
    specs: dict[str, OptionSpec],
    keyword: str,
    panel: str | None = None,
    build: Callable[..., Any] = dict,
) -> Callable[[Callable], Callable]:
    """A decorator adding the Typer options ``specs`` (``max_new_tokens`` is
    ``--max-new-tokens``) to a command, which receives them as one keyword, ``keyword`` =
    ``build(**values)``. An option the command declares itself stays the command's own (its
    default and help win) and is left out of the block."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        own = set(signature.parameters) - {keyword}
        added = {name: spec for name, spec in specs.items() if name not in own}
        params = [p for p in signature.parameters.values() if p.name != keyword]
        for name, (annotation, default, text, *flag) in added.items():
            option = typer.Option(default, *flag, help=text, rich_help_panel=panel)
            kind = inspect.Parameter.KEYWORD_ONLY
            params.append(inspect.Parameter(name, kind, default=option, annotation=annotation))

        @functools.wraps(command)
        def wrapper(**kwargs):
            values = {name: kwargs.pop(name) for name in added}
            return command(**kwargs, **{keyword: build(**values)})

        wrapper.__signature__ = signature.replace(parameters=params)
        wrapper.__annotations__ = {
            **{k: v for k, v in command.__annotations__.items() if k != keyword},
            **{name: spec[0] for name, spec in added.items()},
        }
        return wrapper

    return decorate


def _cli_type(annotation: Any) -> type:
    """The type Typer parses a field as: ``X | None`` is ``X``, a ``Literal`` of strings is
    ``str`` (the spec validates the choice), a constrained alias is its base type, a mapping is
    a repeatable ``KEY=VALUE`` string (the spec reads the pairs)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _cli_type(args[0]) if len(args) == 1 else str
    if origin is Literal:
        return type(typing.get_args(annotation)[0])
    if origin is typing.Annotated:
        return _cli_type(typing.get_args(annotation)[0])
    if origin is list:
        return list[_cli_type(typing.get_args(annotation)[0])]
    if origin is dict:
        return list[str]
    return annotation


def _option(info: FieldInfo, default: Any) -> OptionSpec:
    """A field as ``(type, default, help[, flag])``. ``json_schema_extra`` may set ``"flag"``
    (the option's name, e.g. ``--field`` for ``fields``) and ``"cli": "text"`` (the option
    takes the string form the spec parses, e.g. ``1,2,3`` for a list)."""
    extra = info.json_schema_extra or {}
    kind = str if extra.get("cli") == "text" else _cli_type(info.annotation)
    if isinstance(default, dict):
        default = [f"{key}={value}" for key, value in default.items()]
    flag = (extra["flag"],) if "flag" in extra else ()
    return (kind, default, _help(info), *flag)


def _help(info: FieldInfo) -> str | None:
    choices = (
        typing.get_args(info.annotation) if typing.get_origin(info.annotation) is Literal else ()
    )
    text = info.description
    if choices and text and "," not in text:
        text = f"{text} ({', '.join(map(str, choices))})"
    return text


def field_option(spec: type[Spec], name: str, default: Any = ...) -> OptionSpec:
    """One field of ``spec`` as an :func:`option_block` entry (its help and bounds; ``default``
    replaces the spec's default for this command)."""
    info = spec.model_fields[name]
    return _option(info, info.get_default(call_default_factory=True) if default is ... else default)


def spec_options(
    spec: type[Spec],
    keyword: str,
    panel: str | None = None,
    *,
    exclude: tuple[str, ...] = (),
    defaults: dict[str, Any] | None = None,
) -> Callable[[Callable], Callable]:
    """A decorator adding one option per field of ``spec`` (``max_new_tokens`` is
    ``--max-new-tokens``, its help the field's ``description``) to a command, which receives
    them validated as one keyword, ``keyword=spec(...)``. ``exclude`` leaves fields out (the
    spec's own default then applies), as does ``json_schema_extra={"cli": False}`` on a field;
    ``defaults`` changes a default for this command only (say why in the command's help)."""
    defaults = defaults or {}
    table = {
        name: _option(info, defaults.get(name, info.get_default(call_default_factory=True)))
        for name, info in spec.model_fields.items()
        if name not in exclude and (info.json_schema_extra or {}).get("cli", True)
    }
    return option_block(table, keyword, panel, build=spec.parse)
