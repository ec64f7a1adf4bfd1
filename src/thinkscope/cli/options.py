"""Typer options generated from the specs: :func:`spec_options` turns a
:class:`~thinkscope.core.spec.Spec`'s fields into a command's options (one name, one default,
one help text wherever the spec is used); :func:`option_block` is the mechanism under it."""

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

OptionSpec = tuple[type, Any, str | None]  # (annotation, default, help)


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
        for name, (annotation, default, text) in added.items():
            option = typer.Option(default, help=text, rich_help_panel=panel)
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


# Sampling options several commands share with the same default and help.
sampling_options = option_block(
    {"seed": (int, 0, None), "temperature": (float, 0.7, None), "max_new_tokens": (int, 256, None)},
    "sampling",
)


def _cli_type(annotation: Any) -> type:
    """The type Typer parses a field as: ``X | None`` is ``X``, a ``Literal`` of strings is
    ``str`` (the spec validates the choice), a constrained alias is its base type."""
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
    return annotation


def _help(info: FieldInfo) -> str | None:
    choices = (
        typing.get_args(info.annotation) if typing.get_origin(info.annotation) is Literal else ()
    )
    text = info.description
    if choices and text and "," not in text:
        text = f"{text} ({', '.join(map(str, choices))})"
    return text


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
    spec's own default then applies); ``defaults`` changes a default for this command only."""
    defaults = defaults or {}
    table = {
        name: (
            _cli_type(info.annotation),
            defaults.get(name, info.get_default(call_default_factory=True)),
            _help(info),
        )
        for name, info in spec.model_fields.items()
        if name not in exclude
    }
    return option_block(table, keyword, panel, build=spec.parse)
