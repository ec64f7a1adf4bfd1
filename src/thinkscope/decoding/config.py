"""The decoding knobs of correctness-first sampling (seed 003, arXiv 2510.05987), declared once.

:class:`Knobs` holds the seven knobs beyond temperature / top-k / top-p / min-p with their
bounds and help; :class:`DecodingConfig` (one decoding step) and :class:`DecodingKnobs` (what a
command takes: the knobs, ``--cal-acc-from FILE --cal-acc-threshold`` and ``--log-steps``)
inherit them. The list knobs also accept the CLI's comma-separated strings (``"1,2,..."``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec


def _comma_list(kind: type):
    """A before-validator reading ``"a,b,c"`` (what the CLI passes) as a list of ``kind``."""

    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return [kind(part) for part in value.split(",")]
        except ValueError:
            raise ValueError(f"takes comma-separated {kind.__name__}s, got {value!r}") from None

    return BeforeValidator(parse)


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
DynamicTopK = Annotated[list[int], _comma_list(int), AfterValidator(_ten_ks)]
EdtVar = Annotated[list[float], _comma_list(float), AfterValidator(_edt)]
CalAcc = Annotated[list[float], _comma_list(float), AfterValidator(_cal)]
TEXT = {"cli": "text"}  # the CLI passes the comma-separated string (see cli/options.py)
ConfidenceBin = Annotated[int, Field(ge=1, le=10)]


class Knobs(Spec):
    """The knobs beyond temperature / top-k / top-p / min-p (``None``: unset). Each knob that is
    set gives a count k of top tokens to keep at a step (see :class:`DecodingConfig`)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    greedy_threshold: UnitFloat | None = Field(
        None, description="Greedy at steps whose top probability < tau."
    )
    """tau: k = 1 when ``pmax < tau`` (greedy at low-confidence steps)."""
    prob_threshold: UnitFloat | None = Field(
        None, description="Epsilon sampling: keep tokens with p >= eps."
    )
    """eps (epsilon sampling): k = ``#{p >= eps}``."""
    dynamic_top_k: DynamicTopK | None = Field(
        None,
        description="Ten comma-separated k, one per confidence bin (first: pmax >= 0.9).",
        json_schema_extra=TEXT,
    )
    """Ten counts: k = ``dynamic_top_k[9 - min(9, floor(10 pmax))]`` (first: pmax >= 0.9)."""
    edt_var: EdtVar | None = Field(
        None,
        description="N,theta,T0: entropy-dependent T = T0 * N^(theta/H).",
        json_schema_extra=TEXT,
    )
    """(N, theta, T0): entropy-dependent ``T = T0 * N ** (theta / H)`` replaces ``temperature``,
    H the entropy (nats) of ``softmax(z)`` unscaled; no clamp (H = 0 gives T = 0 for N < 1,
    greedy, and T = inf for N > 1, uniform over the finite logits)."""
    hewitt_epsilon: UnitFloat | None = Field(
        None, description="Eta sampling: keep p >= min(eps, sqrt(eps) exp(-H))."
    )
    """eps (eta sampling): k = ``#{p >= min(eps, sqrt(eps) * exp(-H'))}``, H' the entropy of p."""
    confidence_bin_only: ConfidenceBin | None = Field(
        None, description="Sample only in confidence bin b (1..10), greedy elsewhere."
    )
    """b in 1..10: k = 1 when ``min(9, floor(10 pmax)) + 1 != b`` (sample only in bin b)."""
    cal_acc: CalAcc | None = Field(
        None, description="A,B,thr: keep tokens with 10^A p^B >= thr.", json_schema_extra=TEXT
    )
    """(A, B, thr), calibrated epsilon: k = ``#{10**A * p**B >= thr}`` (B > 0)."""


class DecodingKnobs(Knobs):
    """The decoding settings of a command that samples: the knobs, ``cal_acc`` read from a
    ``calibration.json`` (``cal_acc_from`` + ``cal_acc_threshold``, resolved into ``cal_acc``
    and not stored themselves), and the per-step logs."""

    cal_acc_from: Path | None = Field(
        None,
        description="calibration.json from `thinkscope calibrate`: A and B for --cal-acc.",
        exclude=True,
    )
    cal_acc_threshold: float | None = Field(
        None, description="thr for --cal-acc-from.", exclude=True
    )
    log_steps: bool = Field(
        False, description="Record pmax, rank, probability and kept count of every step."
    )

    @model_validator(mode="before")
    @classmethod
    def _cal_acc_from_file(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        path, threshold = values.get("cal_acc_from"), values.get("cal_acc_threshold")
        if path is not None and values.get("cal_acc") is not None:
            raise ValueError("give --cal-acc or --cal-acc-from, not both")
        if (path is None) != (threshold is None):
            raise ValueError("--cal-acc-from and --cal-acc-threshold go together")
        if path is None:
            return values
        return {**values, "cal_acc": cal_acc_from_file(path, threshold)}


class DecodingConfig(Knobs):
    """One step of decoding, per row of logits ``z`` ``[B, V]`` (see :func:`decode_step`).

    Scale first: ``p = softmax(z / T)``, ``pmax = max p``. Every knob that is set gives a
    count of top tokens to keep; the smallest count wins, at least 1; the top-k tokens of ``p``
    are kept and every other token gets ``-inf``. Unset knobs (``None``; also ``top_k=0``,
    ``top_p=1`` and ``min_p=0``, their no-op values) keep every token. With every knob unset and
    ``temperature=1`` the logits come back untouched. The scale and truncation fields have their
    no-op defaults here (a command's defaults are its
    :class:`~thinkscope.generation.spec.SamplingSpec`'s).
    """

    model_config = ConfigDict(frozen=True)

    temperature: float = Field(1.0, ge=0, allow_inf_nan=False)
    """``T``: scale ``z / T``. ``0`` (or a T so small that ``z / T`` overflows) is greedy:
    k = 1, and ``p = softmax(z)`` unscaled."""
    top_k: int | None = Field(None, ge=0)
    """k = ``top_k``."""
    top_p: float | None = Field(None, gt=0, le=1)
    """k = ``#{cumsum(sorted p, descending) <= top_p} + 1``."""
    min_p: float | None = Field(None, ge=0, le=1)
    """k = ``#{p >= min_p * pmax}``."""

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
