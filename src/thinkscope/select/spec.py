"""The selection methods' knobs, declared once (light: no torch), for ``think-at-n`` and the
profile's selection section."""

from __future__ import annotations

from pydantic import Field, field_validator

from thinkscope.core.spec import Spec

CONTINUOUS = ("depth", "dtr+depth")


class SelectKnobs(Spec):
    """Think@n's prefix and keep ratio, the repeats, DeepConf's share, window and warm-up, and
    the continuous prefix score of ``think@n-depth``."""

    prefix_tokens: int = Field(8, ge=1)
    keep_ratio: float = Field(0.5, gt=0, le=1)
    repeats: int = Field(3, ge=1)
    eta: float = Field(0.5, gt=0, le=1)  # DeepConf: share of samples kept
    window: int = Field(16, ge=1)  # DeepConf group size, tokens
    warmup: int | None = Field(None, ge=1)  # DeepConf online warm-up samples (None: n // 4)
    continuous: str = "depth"  # think@n-depth's score: "depth" or "dtr+depth"

    @field_validator("continuous")
    @classmethod
    def _known_continuous(cls, continuous: str) -> str:
        if continuous not in CONTINUOUS:
            raise ValueError(f"must be one of {', '.join(CONTINUOUS)}")
        return continuous
