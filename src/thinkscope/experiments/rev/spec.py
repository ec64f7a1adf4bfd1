"""The settings of a REV grid (no torch here: the CLI builds its options from them), its
presets, and how a preset, a YAML file and the options given combine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from thinkscope.core.errors import UserError
from thinkscope.core.spec import with_default
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import BUNDLED, LoadingSpec
from thinkscope.tasks.spec import TaskSpec

#: Named presets: the seed's full evaluation (``eval.default.yaml``: GSM8K 800, 64 new
#: tokens, temperature 0.2) and its debug run (``eval.debug.yaml``: 10 samples).
PRESETS: dict[str, dict[str, Any]] = {
    "full": {"task": "gsm8k", "questions": 800, "max_new_tokens": 64, "temperatures": [0.2]},
    "debug": {"task": "gsm8k", "questions": 10, "max_new_tokens": 64, "temperatures": [0.2]},
}


class RevGridConfig(LoadingSpec, TaskSpec, SamplingSpec):
    """The grid (models x temperatures), how every cell's run is generated, and the
    evaluation's statistics. ``temperature`` is not a setting here: ``temperatures`` is."""

    models: list[str] = Field(
        [BUNDLED], description="Models of the grid, a comma list (names, folders, hub ids)."
    )
    temperatures: tuple[float, ...] = (0.2,)  # declared as ExperimentConfig's, another default
    max_new_tokens: int = with_default(SamplingSpec, "max_new_tokens", 64)
    resamples: int = Field(10_000, ge=0, description="Bootstrap resamples for the AUROC CIs.")
    folds: int = Field(5, ge=2, description="Cross-validation folds of the logistic models.")
    ablation_questions: int = Field(16, ge=1, description="Problems of the head-ablation curve.")
    control: Path | None = Field(
        None,
        description="Control set: a text file (one text per line) or JSONL ('text' field); "
        "default: the bundled 32 sentences.",
    )

    @field_validator("models", "temperatures", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",")] if isinstance(value, str) else value

    @field_validator("control")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        return None if path is None else Path(path).expanduser().resolve()

    @model_validator(mode="after")
    def _check(self) -> Self:
        if "temperature" in self.model_fields_set:
            raise ValueError("the grid's temperatures are --temperatures (a comma list)")
        if not self.models or not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ValueError("--models and --temperatures take non-empty lists, temperatures >= 0")
        if len(set(self.models)) < len(self.models) or len(set(self.temperatures)) < len(
            self.temperatures
        ):
            raise ValueError("--models and --temperatures must not repeat a value")
        return self

    def cell(self, model: str, temperature: float):
        """The generate config of one cell (refused in one line when it is not valid)."""
        names = (*LoadingSpec.model_fields, *TaskSpec.model_fields, *SamplingSpec.model_fields)
        values = {name: getattr(self, name) for name in names}
        from thinkscope.generation.pipeline import GenerateConfig  # torch: not at CLI import

        return GenerateConfig.parse(**{**values, "model": model, "temperature": temperature})

    def cells(self) -> dict:
        """Every cell by its folder name, models outer, temperatures inner."""
        return {
            f"m{i}_{_slug(model)}_T{t:g}": self.cell(model, t)
            for i, model in enumerate(self.models)
            for t in self.temperatures
        }

    def record(self) -> dict:
        values = self.model_dump(mode="json", exclude={"temperature"})
        values["temperatures"] = list(self.temperatures)
        return values


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", Path(model).name or model).strip("-")[:40]


def grid_config(
    preset: str | None = None, file: Path | None = None, given: dict | None = None
) -> RevGridConfig:
    """The grid's config from a preset, a YAML file and the options given (each one wins over
    the one before); a one-line :class:`UserError` for an unknown preset or a bad file."""
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"--preset {preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    if file is not None:
        if not Path(file).is_file():
            raise UserError(f"--config {file}: no such file")
        try:
            loaded = yaml.safe_load(Path(file).read_text())
        except yaml.YAMLError as err:
            raise UserError(f"--config {file}: not YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise UserError(f"--config {file}: expected a mapping of the grid's options")
        values.update({str(k).replace("-", "_"): v for k, v in loaded.items()})
    values.update(given or {})
    return RevGridConfig.parse(**values)
