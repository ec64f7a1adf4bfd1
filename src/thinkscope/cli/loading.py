"""The model options of every command that loads a model, generated from
:class:`~thinkscope.models.ModelSpec`: ``--model``, ``--revision``, ``--dtype``, ``--device``,
``--device-map``, ``--attn-implementation`` and ``--trust-remote-code``, with one help text.

``@model_options`` gives the command ``model_spec=ModelSpec(...)``; ``own_model_options`` (for
``score``, ``merge``, ``experiment rev``) lets ``--model`` default to the recorded one;
``@model_overrides`` (``runs reproduce``) gives ``model_overrides``, a dict of the options
given, each defaulting to the run's own.
"""

from __future__ import annotations

from pydantic import Field, create_model

from thinkscope.cli.options import option_block, spec_options
from thinkscope.models.spec import BUNDLED, ModelSpec

PANEL = "Model"

#: ``command`` with the model options added; it gets them as ``model_spec=ModelSpec(...)``.
model_options = spec_options(ModelSpec, "model_spec", PANEL)


def own_model_options(description: str):
    """The model options with ``--model`` defaulting to a recorded one (``description`` says
    which); the command gets ``model_spec`` (its ``model`` ``None`` when not given) and turns
    it into the spec to load with :func:`with_own_model`."""
    field = (str | None, Field(None, description=description))
    spec = create_model("OwnModelSpec", __base__=ModelSpec, model=field)
    return spec_options(spec, "model_spec", PANEL)


def with_own_model(spec: ModelSpec, recorded: dict, keep: tuple[str, ...]) -> ModelSpec:
    """``spec``, or without ``--model`` the ``recorded`` model with its ``keep`` fields
    (``revision``, ``weights``, ...) and ``spec``'s other options."""
    if spec.model is not None:
        return ModelSpec.of(spec)
    own = {k: recorded[k] for k in ("model", *keep) if recorded.get(k) is not None}
    return ModelSpec.of(spec, **{"model": BUNDLED, **own})


def model_overrides(command):
    """``command`` with the model options added, each defaulting to the run's own; it gets the
    given ones as ``model_overrides`` (a dict, validated by :class:`ModelSpec` when applied)."""
    table = {
        name: (
            bool if name == "trust_remote_code" else str,
            None,
            f"{info.description} Default: the run's.",
        )
        for name, info in ModelSpec.model_fields.items()
        if (info.json_schema_extra or {}).get("cli", True)
    }
    build = lambda **values: {k: v for k, v in values.items() if v is not None}  # noqa: E731
    return option_block(table, "model_overrides", PANEL, build=build)(command)


__all__ = ["PANEL", "model_options", "model_overrides", "own_model_options", "with_own_model"]
