"""What a trace must satisfy to enter an SFT dataset: the one declaration of ``dataset build``'s
filters (no pandas, so the command's options come from it at no import cost)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from thinkscope.core.spec import Spec


class DatasetFilters(Spec):
    """What a trace must satisfy to enter the dataset (the defaults keep every complete trace)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
        """The filters that differ from the defaults (for the card)."""
        return self.model_dump(exclude_defaults=True)
