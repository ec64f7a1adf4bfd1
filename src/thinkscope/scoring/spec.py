"""The score stage's own settings (beside the metrics and the model): the one declaration of
``score``'s ``--max-tokens`` (no torch, so the command's options come from it at no cost)."""

from __future__ import annotations

from pydantic import Field

from thinkscope.core.spec import Spec


class ScoringSpec(Spec):
    """How much of each trace the score stage reads."""

    max_tokens: int | None = Field(
        None,
        ge=1,
        description="Score only the first N generated tokens of each trace, as if it had been "
        "cut there (the DTR explorer's DTR_MAX_TOKENS; default: every token).",
    )
