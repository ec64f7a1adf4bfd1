"""Deep-Thinking Ratio (arXiv 2602.13517) and settling depths.

- settling depth ``c_t = min{l : min_{j<=l} D_{t,j} <= g}`` (1-indexed), D the JSD of layer l's
  lens distribution from the final one, compared in ``base`` units (``"e"``: nats, 2: bits);
- token t is deep iff ``c_t >= ceil(rho * L)``; ``DTR = mean_t 1[deep]`` over generated tokens.
"""

from __future__ import annotations

import math
import warnings

import torch

from thinkscope.lens import ln_base
from thinkscope.metrics.dtr_spec import BASE_DEFAULT, G_DEFAULT, RHO_DEFAULT, DTRSpec
from thinkscope.metrics.registry import Metric, Needs, Result, TraceLens, register

DTR_DEFAULTS = DTRSpec().model_dump()
SETTLE_DEFAULTS = {"g": G_DEFAULT, "base": BASE_DEFAULT}


def settling_depth(
    jsd: torch.Tensor, g: float = G_DEFAULT, base: str | float = BASE_DEFAULT
) -> torch.Tensor:
    """Settling depths ``[T]`` (int64, 1..L) of a JSD profile ``jsd`` ``[T, L]`` in nats.

    The first layer whose JSD is <= g (in ``base`` units) is also where the running minimum
    first drops to g. A row with no such layer (only possible when ``D_{t,L}`` is not 0) gets L.
    """
    below = jsd <= torch.tensor(g * ln_base(base), dtype=torch.float32).to(jsd)
    first = below.to(torch.uint8).argmax(-1) + 1
    return torch.where(below.any(-1), first, jsd.shape[-1])


def deep_layer(n_layers: int, rho: float = RHO_DEFAULT) -> int:
    """``ceil(rho * L)``, robust to float noise (0.9 * 30 is 27.000000000000004)."""
    return math.ceil(round(rho * n_layers, 9))


def deep_thinking_ratio(depths: torch.Tensor, n_layers: int, rho: float = RHO_DEFAULT) -> float:
    """DTR of one trace from its settling depths ``[T]``; NaN (with a warning) when T = 0."""
    if depths.numel() == 0:
        warnings.warn("DTR is undefined for an empty completion; returning NaN", stacklevel=2)
        return math.nan
    return float((depths >= deep_layer(n_layers, rho)).float().mean())


def depths_of(view: TraceLens, g: float, base: str) -> torch.Tensor:
    """Settling depths ``[T]`` for g (``base`` units) from the fast path or the full profile."""
    g_nats = g * ln_base(base)
    if g_nats in view.depths:
        return view.depths[g_nats]
    if view.jsd is None:
        raise KeyError(f"no settling depths for g={g} ({base}) were computed")
    return settling_depth(view.jsd, g, base)


def _dtr(view: TraceLens, g: float, rho: float, base: str) -> Result:
    depths = depths_of(view, g, base)
    deep = depths >= deep_layer(view.n_layers, rho)
    return Result(
        deep_thinking_ratio(depths, view.n_layers, rho), {"settling_depth": depths, "deep": deep}
    )


def _mean_depth(view: TraceLens, g: float, base: str) -> Result:
    depths = depths_of(view, g, base)
    value = float(depths.double().mean()) if len(depths) else math.nan
    return Result(value, {"settling_depth": depths})


def _median_depth(view: TraceLens, g: float, base: str) -> Result:
    depths = depths_of(view, g, base)
    value = float(depths.double().quantile(0.5)) if len(depths) else math.nan
    return Result(value, {"settling_depth": depths})


def _settle_needs(g: float, base: str, **_) -> Needs:
    return Needs(lens=True, thresholds=frozenset({g * ln_base(base)}))


register(
    Metric(
        "dtr",
        _dtr,
        _settle_needs,
        dict(DTR_DEFAULTS),
        {"settling_depth": ("g", "base"), "deep": ("g", "rho", "base")},
        doc="Deep-Thinking Ratio: share of tokens settling at or above ceil(rho L)",
    )
)
register(
    Metric(
        "mean-settling-depth",
        _mean_depth,
        _settle_needs,
        dict(SETTLE_DEFAULTS),
        {"settling_depth": ("g", "base")},
        doc="mean settling depth (1-indexed layer)",
    )
)
register(
    Metric(
        "median-settling-depth",
        _median_depth,
        _settle_needs,
        dict(SETTLE_DEFAULTS),
        {"settling_depth": ("g", "base")},
        doc="median settling depth (midpoint of the two middle ones)",
    )
)
