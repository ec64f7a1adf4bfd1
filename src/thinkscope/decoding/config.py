"""The decoding knobs of correctness-first sampling (seed 003, arXiv 2510.05987) in one config.

Validation lives in the annotated types below, so :class:`DecodingConfig` and the flat fields
of :class:`~thinkscope.generation.pipeline.GenerateConfig` share one definition of what is valid.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from thinkscope.core.errors import UserError


def _ten_ks(ks: list[int]) -> list[int]:
    if len(ks) != 10 or min(ks) < 1:
        raise ValueError(f"needs 10 integers >= 1 (one per confidence bin), got {ks}")
    return ks


def _edt(values: list[float]) -> list[float]:
    if len(values) != 3:
        raise ValueError(f"needs 3 numbers N,theta,T0, got {values}")
    n, theta, t0 = values
    if not (n > 0 and t0 > 0 and math.isfinite(n * theta * t0)):
        raise ValueError(f"needs N > 0, finite theta and T0 > 0, got {values}")
    return values


def _cal(values: list[float]) -> list[float]:
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"needs 3 finite numbers A,B,thr, got {values}")
    if values[1] <= 0:
        raise ValueError(f"needs B > 0 (accuracy rising with probability), got B={values[1]}")
    return values


UnitFloat = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
DynamicTopK = Annotated[list[int], AfterValidator(_ten_ks)]
EdtVar = Annotated[list[float], AfterValidator(_edt)]
CalAcc = Annotated[list[float], AfterValidator(_cal)]
ConfidenceBin = Annotated[int, Field(ge=1, le=10)]

#: The knobs beyond temperature/top-k/top-p/min-p (GenerateConfig has them as flat fields).
EXTRA_KNOBS = (
    "greedy_threshold",
    "prob_threshold",
    "dynamic_top_k",
    "edt_var",
    "hewitt_epsilon",
    "confidence_bin_only",
    "cal_acc",
)


class DecodingConfig(BaseModel):
    """One step of decoding, per row of logits ``z`` ``[B, V]`` (see :func:`decode_step`).

    Scale first: ``p = softmax(z / T)``, ``pmax = max p``. Every knob that is set gives a
    count of top tokens to keep; the smallest count wins, at least 1; the top-k tokens of ``p``
    are kept and every other token gets ``-inf``. Unset knobs (``None``; also ``top_k=0``,
    ``top_p=1`` and ``min_p=0``, their no-op values) keep every token. With every knob unset and
    ``temperature=1`` the logits come back untouched.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    temperature: float = Field(1.0, ge=0, allow_inf_nan=False)
    """``T``: scale ``z / T``. ``0`` (or a T so small that ``z / T`` overflows) is greedy:
    k = 1, and ``p = softmax(z)`` unscaled."""
    top_k: int | None = Field(None, ge=0)
    """k = ``top_k``."""
    top_p: float | None = Field(None, gt=0, le=1)
    """k = ``#{cumsum(sorted p, descending) <= top_p} + 1``."""
    min_p: float | None = Field(None, ge=0, le=1)
    """k = ``#{p >= min_p * pmax}``."""
    greedy_threshold: UnitFloat | None = None
    """tau: k = 1 when ``pmax < tau`` (greedy at low-confidence steps)."""
    prob_threshold: UnitFloat | None = None
    """eps (epsilon sampling): k = ``#{p >= eps}``."""
    dynamic_top_k: DynamicTopK | None = None
    """Ten counts: k = ``dynamic_top_k[9 - min(9, floor(10 pmax))]`` (first: pmax >= 0.9)."""
    edt_var: EdtVar | None = None
    """(N, theta, T0): entropy-dependent ``T = T0 * N ** (theta / H)`` replaces ``temperature``,
    H the entropy (nats) of ``softmax(z)`` unscaled; no clamp (H = 0 gives T = 0 for N < 1,
    greedy, and T = inf for N > 1, uniform over the finite logits)."""
    hewitt_epsilon: UnitFloat | None = None
    """eps (eta sampling): k = ``#{p >= min(eps, sqrt(eps) * exp(-H'))}``, H' the entropy of p."""
    confidence_bin_only: ConfidenceBin | None = None
    """b in 1..10: k = 1 when ``min(9, floor(10 pmax)) + 1 != b`` (sample only in bin b)."""
    cal_acc: CalAcc | None = None
    """(A, B, thr), calibrated epsilon: k = ``#{10**A * p**B >= thr}`` (B > 0)."""

    @field_validator("top_k")
    @classmethod
    def _no_top_k(cls, value: int | None) -> int | None:
        return value or None

    @field_validator("top_p")
    @classmethod
    def _no_top_p(cls, value: float | None) -> float | None:
        return None if value == 1 else value

    @field_validator("min_p")
    @classmethod
    def _no_min_p(cls, value: float | None) -> float | None:
        return value or None

    @property
    def identity(self) -> bool:
        """True when the processor returns the logits untouched."""
        knobs = self.model_dump(exclude={"temperature"})
        return self.temperature == 1 and all(v is None for v in knobs.values())

    def processor(self):
        """This config as a ``transformers.LogitsProcessor``."""
        from thinkscope.decoding.processor import DecodingProcessor

        return DecodingProcessor(self)


def cal_acc_from_file(path: Path | str, threshold: float) -> list[float]:
    """``[A, B, threshold]`` with A and B read from the top-level keys of a ``calibration.json``
    (what ``thinkscope calibrate`` writes)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"calibration file {path} does not exist; run `thinkscope calibrate`")
    try:
        fit = json.loads(path.read_text())
        values = [float(fit["A"]), float(fit["B"]), float(threshold)]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path} needs numeric top-level keys 'A' and 'B' ({err})") from None
    return values
