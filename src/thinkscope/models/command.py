"""The model-loading options as one reusable block for any Typer command that loads a model.

``@loading_options`` under ``@app.command()`` adds ``--dtype``, ``--device``, ``--device-map``,
``--attn-implementation``, ``--revision`` and ``--trust-remote-code`` to a command; the command
receives them as one keyword, ``loading``: a :class:`~thinkscope.models.loading.Loading`, which
unpacks into :func:`thinkscope.models.load_model` (``load_model(spec, **loading)``) and travels
as one object to Ray workers and the vLLM engine. A command that already has its own
``--device`` keeps it (and passes it on itself).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import typer

from thinkscope.models.loading import Loading

_OPTIONS = {  # name: (annotation, default, help)
    "dtype": (str, "auto", "auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16 or float16."),
    "device": (str, None, "cpu, cuda or cuda:N for the whole model (default: cuda if present)."),
    "device_map": (str, None, "Spread the model over devices with accelerate, e.g. auto."),
    "attn_implementation": (str, None, "eager, sdpa or flash_attention_2 (default: the model's)."),
    "revision": (str, None, "Hub branch, tag or commit of the model."),
    "trust_remote_code": (bool, False, "Run the model repository's own code (hub models)."),
}


def loading_options(command: Callable) -> Callable:
    """``command`` with the loading options added; it gets them as ``loading=Loading(...)``."""
    signature = inspect.signature(command)
    own = set(signature.parameters) - {"loading"}
    added = {name: spec for name, spec in _OPTIONS.items() if name not in own}
    params = [p for p in signature.parameters.values() if p.name != "loading"]
    for name, (annotation, default, text) in added.items():
        option = typer.Option(default, help=text, rich_help_panel="Model loading")
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
            )
        )

    @functools.wraps(command)
    def wrapper(**kwargs):
        values = {name: kwargs.pop(name) for name in added}
        return command(**kwargs, loading=Loading(**values))

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {
        **{k: v for k, v in command.__annotations__.items() if k != "loading"},
        **{name: spec[0] for name, spec in added.items()},
    }
    return wrapper
