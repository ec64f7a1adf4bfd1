"""What a trace must satisfy to enter an SFT dataset: the one declaration of ``dataset build``'s
filters (no pandas, so the command's options come from it at no import cost)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from thinkscope.core.spec import Spec

PRESETS: dict[str, dict[str, Any]] = {
    # the DTR explorer's strict SFT defaults (its README: require_correct=1, require_boxed=1,
    # exclude_truncated=1; generate_dtr_dataset.py --min-dtr 0.32 --keep-per-q 4
    # --require-correct --fallback-best-correct)
    "dtr-explorer": {
        "require_correct": True,
        "require_answer_tag": True,
        "truncated": "exclude",
        "min_dtr": 0.32,
        "keep_per_question": 4,
        "fallback_best_correct": True,
    },
}


class DatasetFilters(Spec):
    """What a trace must satisfy to enter the dataset (the defaults keep every complete trace).

    ``preset`` fills in the filters it names; a filter given explicitly wins over the preset's
    value (``DatasetFilters(preset="dtr-explorer", min_dtr=0.5)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["dtr-explorer"] | None = Field(
        None,
        description="Start from a named set of filters; any filter given explicitly overrides "
        "the preset's value. dtr-explorer: --require-correct --require-answer-tag "
        "--truncated exclude --min-dtr 0.32 --keep-per-question 4 --fallback-best-correct.",
    )

    require_correct: bool = Field(False, description="Keep only traces the grader marks right.")
    require_answer_tag: bool = Field(
        False, description="Keep only responses with an <answer> tag or \\boxed{}."
    )
    truncated: Literal["exclude", "keep"] = Field(
        "exclude",
        description="Traces cut at --max-new-tokens: exclude them, or keep them without an "
        "end-of-sequence token in training.",
    )
    min_tokens: int | None = Field(
        None, ge=0, description="Drop responses shorter than this (tokens)."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="Drop responses longer than this (tokens)."
    )
    dedupe: bool = Field(False, description="Drop repeated identical responses to a prompt.")
    min_dtr: float | None = Field(
        None, ge=0, le=1, description="Keep traces with DTR >= X (needs a scored run)."
    )
    fallback_best_correct: bool = Field(
        False, description="A question with no trace at --min-dtr keeps its best correct one."
    )
    keep_per_question: int | None = Field(
        None,
        ge=1,
        description="Keep the K best traces per question (by DTR, then log-probability).",
    )
    dtr_column: str = Field("dtr", description="Which DTR column of a scored run to use.")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, values: Any) -> Any:
        name = values.get("preset") if isinstance(values, dict) else None
        if name not in PRESETS:
            return values  # no preset, or an unknown one (the field refuses it)
        return {**PRESETS[name], **values}

    @model_validator(mode="after")
    def _consistent(self) -> DatasetFilters:
        lo, hi = self.min_tokens, self.max_tokens
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("--min-tokens is larger than --max-tokens")
        if self.fallback_best_correct and self.min_dtr is None:
            raise ValueError("--fallback-best-correct needs --min-dtr")
        return self

    @property
    def needs_dtr(self) -> bool:
        return self.min_dtr is not None

    def active(self) -> dict:
        """The filters that differ from the defaults (for the card); with a preset, its name
        and every filter as resolved."""
        return self.model_dump(exclude_defaults=self.preset is None)
