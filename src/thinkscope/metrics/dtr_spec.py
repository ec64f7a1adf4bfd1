"""The DTR parameters g, rho and the log base, declared once (no torch: the CLI builds its
options from these fields, and every default of g and rho in the package comes from here)."""

from __future__ import annotations

import math

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from thinkscope.core.spec import Spec

G_DEFAULT = 0.5  # the paper's settling threshold, in nats
RHO_DEFAULT = 0.85  # the paper's depth share: deep from layer ceil(0.85 L)
BASE_DEFAULT = "e"


def check_g(g: float, base: str, given: str) -> None:
    """Raise ``ValueError`` unless ``0 < g < ln 2 / ln base``: the JSD never exceeds ln 2 nats,
    so from that bound on every token settles at layer 1 and DTR is 0 for every trace.
    ``given``: how the user wrote it (``--g 0.9``, ``dtr[g=0.9]``), for the message."""
    from thinkscope.lens import ln_base

    top = math.log(2) / ln_base(base)
    if not 0 < g < top:
        raise ValueError(
            f"{given} is out of range: the settling threshold g must be in (0, {top:.4g}) "
            f"for base {base} (the JSD is at most ln 2 nats; at or above it every token settles "
            "at layer 1)"
        )


class DTRSpec(Spec):
    """Settling threshold ``g`` (JSD in ``base`` units) and depth share ``rho`` of the
    Deep-Thinking Ratio (arXiv 2602.13517; paper defaults g = 0.5, rho = 0.85)."""

    g: float = Field(
        G_DEFAULT, gt=0, description="DTR settling threshold on the JSD, in --base units."
    )
    rho: float = Field(
        RHO_DEFAULT, gt=0, le=1, description="DTR: deep if settled at layer >= ceil(rho L)."
    )
    base: str = Field(BASE_DEFAULT, description="Log base of --g: e (nats), 2 (bits) or 10.")

    @field_validator("base")
    @classmethod
    def _known_base(cls, base: str) -> str:
        from thinkscope.lens import ln_base

        try:
            ln_base(base)
        except ValueError:
            raise ValueError("must be e, 2, 10 or another number > 1") from None
        return base

    @model_validator(mode="after")
    def _g_below_max_jsd(self) -> Self:
        check_g(self.g, self.base, f"--g {self.g}")
        return self
