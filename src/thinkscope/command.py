"""Typer option blocks that several commands share: :func:`option_block` builds a decorator
like ``@loading_options`` from a table of options; ``@sampling_options`` is one."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

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
