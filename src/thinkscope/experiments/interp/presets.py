"""The settings of ``thinkscope interp run`` (no torch): :class:`InterpSizes`, how much of seed
002's pipeline runs, whose fields a preset fills (seed 002's quick_test / full_analysis /
layer_specific) and an explicit option overrides, one by one; :class:`InterpConfig`, the whole
run's spec; and the layer syntax (``all``, ``A-B``, ``a,b,c``)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec, with_default
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import ModelSpec
from thinkscope.tasks.spec import TaskSpec

#: The presets' values; the fields they leave out take :class:`InterpSizes`'s defaults, which
#: are the quick preset.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {},
    "full": {
        "questions": 200,
        "samples": 8,
        "max_new_tokens": 256,
        "sweep_questions": 100,
        "strengths": [-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0],
        "folds": 5,
    },
}


def layer_syntax(text: str) -> list[int] | None:
    """``A-B`` or ``a,b,c`` as a sorted list of layers >= 1; ``all`` as ``None`` (checked
    before a model is loaded; :func:`parse_layers` bounds it by the model's layers)."""
    if text == "all":
        return None
    try:
        if "-" in text:
            first, last = (int(x) for x in text.split("-"))
            layers = list(range(first, last + 1))
        else:
            layers = sorted({int(x) for x in text.split(",")})
    except ValueError as err:
        raise UserError(f"--layers takes all, A-B or a comma list, got {text!r}") from err
    if not layers or layers[0] < 1:
        raise UserError(f"--layers {text!r} must name layers from 1 up")
    return layers


def parse_layers(text: str, n_layers: int) -> list[int]:
    """``all``, ``A-B`` or ``a,b,c`` as a sorted list of layers in 1..n_layers."""
    layers = layer_syntax(text)
    if layers is None:
        return list(range(1, n_layers + 1))
    if layers[-1] > n_layers:
        raise UserError(f"--layers {text!r} must lie within 1..{n_layers}")
    return layers


def preset_values(name: str) -> dict[str, Any]:
    """The values preset ``name`` gives: ``quick``, ``full`` or ``layers:A-B`` (full on A..B)."""
    if name in PRESETS:
        return PRESETS[name]
    match = re.fullmatch(r"layers:(\d+)-(\d+)", name)
    if match:
        return {**PRESETS["full"], "layers": f"{match[1]}-{match[2]}"}
    raise UserError(f"unknown preset {name!r}; choose quick, full or layers:A-B")


class InterpSizes(Spec):
    """The preset and the sizes it fills; a value given explicitly (not ``None``) overrides
    the preset's. The probe problems and the held-out steering problems are the run's
    train/test split of the task; the probe folds split the probe problems again."""

    preset: str = Field(
        "quick",
        description="quick, full or layers:A-B (full on layers A..B); the options in the "
        "Sizes panel override its values one by one.",
    )
    questions: int = with_default(TaskSpec, "questions", 16)  # sampled for the probes
    samples: int = Field(4, ge=1, description="Samples per probe problem.")
    contrast: int = Field(
        32, ge=2, description="Reasoning and control prompts per class for the directions."
    )
    folds: int = Field(
        4, ge=2, description="Probe cross-validation folds, grouped by problem (test: 1/folds)."
    )
    probe: Literal["logistic", "mlp"] = Field(
        "logistic", description="Probe per layer: logistic, or mlp (one hidden layer, seeded)."
    )
    max_new_tokens: int = with_default(SamplingSpec, "max_new_tokens", 24)
    sweep_questions: int = Field(
        8, ge=1, description="Held-out problems answered greedily per steering strength."
    )
    strengths: list[float] = Field(
        [-8.0, 0.0, 8.0],
        min_length=1,
        description="Steering strengths (x the raw reasoning direction), e.g. -8,0,8.",
        json_schema_extra={"cli": "text"},
    )
    layers: str = Field("all", description="Layers (1..L): all, A-B or a comma list.")

    @model_validator(mode="before")
    @classmethod
    def _fill(cls, values: Any) -> Any:
        """The preset's values under those given (a ``None`` is not given)."""
        if not isinstance(values, dict):
            return values
        sizes = InterpSizes.model_fields
        given = {k: v for k, v in values.items() if v is not None or k not in sizes}
        return {**preset_values(given.get("preset", "quick")), **given}

    @field_validator("strengths", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        """``"-8,0,8"`` (the CLI's form) as numbers, each once."""
        if isinstance(value, str):
            try:
                value = [float(x) for x in value.split(",")]
            except ValueError:
                raise ValueError(f"takes numbers such as -8,0,8, got {value!r}") from None
        if isinstance(value, list) and len(set(value)) < len(value):
            raise ValueError(f"names a strength twice: {value}")
        return value

    @field_validator("contrast")
    @classmethod
    def _bundled(cls, value: int) -> int:
        bundled = len(contrast_prompts()[0])
        if value > bundled:
            raise ValueError(
                f"the bundled contrast set has {bundled} prompts per class, not {value}"
            )
        return value

    @field_validator("layers")
    @classmethod
    def _layer_syntax(cls, value: str) -> str:
        layer_syntax(value)
        return value


class InterpConfig(ModelSpec, InterpSizes):
    """Everything ``interp run`` needs: the model and its loading options, the preset and the
    sizes it fills (:class:`InterpSizes`), and the run's own settings."""

    out: Path
    model_b: str | None = Field(
        None, description="Second model (same loading options): CKA, transplantation."
    )
    task: str = with_default(TaskSpec, "task", "demo-arith")
    steer_layer: int | None = Field(
        None, ge=1, description="Steer the output of this block (default: the middle layer)."
    )
    seed: int = with_default(SamplingSpec, "seed", 0)
    batch_size: int = Field(16, ge=1, description="Sequences per forward pass.")


def contrast_prompts() -> tuple[list[str], list[str], str]:
    """The bundled reasoning and control prompts and where they come from."""
    data = json.loads((resources.files("thinkscope.interp") / "data" / "contrast.json").read_text())
    return data["reasoning"], data["control"], data["origin"]
