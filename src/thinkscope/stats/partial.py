"""Pearson partial correlation of a metric with correctness, controlling for covariates."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import t as t_dist

from thinkscope.stats._checks import require_columns


@dataclass(frozen=True)
class PartialCorrelation:
    """Partial r with its two-sided p-value (t test, ``dof = n - 2 - k``); NaN when undefined."""

    r: float
    p: float
    n: int
    dof: int
    n_dropped: int
    undefined_reason: str | None = None


def partial_correlation(
    df: pd.DataFrame,
    x: str,
    y: str = "correct",
    covariates: Sequence[str] = ("length", "perplexity"),
) -> PartialCorrelation:
    """Pearson correlation of the residuals of ``x`` and ``y`` after OLS on the covariates.

    The OLS fit has an intercept, so with no covariates this is plain Pearson r. Rows with a
    NaN in any of the columns are dropped (``n_dropped``). r is undefined when fewer than
    ``k + 3`` rows remain or a residual is constant (x or y explained by the covariates).
    """
    cols = [x, y, *covariates]
    require_columns(df, cols)
    data = df[cols].astype(float).to_numpy()
    keep = ~np.isnan(data).any(axis=1)
    data = data[keep]
    n, k = len(data), len(covariates)
    dof = n - 2 - k
    n_dropped = int((~keep).sum())

    def undefined(reason: str) -> PartialCorrelation:
        return PartialCorrelation(np.nan, np.nan, n, dof, n_dropped, reason)

    if dof < 1:
        return undefined(f"need at least {k + 3} complete rows, got {n}")
    design = np.column_stack([np.ones(n), data[:, 2:]])
    beta = np.linalg.lstsq(design, data[:, :2], rcond=None)[0]
    res = data[:, :2] - design @ beta
    ss = (res**2).sum(axis=0)
    sst = ((data[:, :2] - data[:, :2].mean(axis=0)) ** 2).sum(axis=0)
    if np.any(sst == 0) or np.any(ss <= 1e-12 * sst):
        return undefined("x or y is constant after removing the covariates")
    r = float(np.clip(res[:, 0] @ res[:, 1] / np.sqrt(ss[0] * ss[1]), -1.0, 1.0))
    if abs(r) == 1.0:
        return PartialCorrelation(r, 0.0, n, dof, n_dropped)
    t_stat = r * np.sqrt(dof / (1 - r**2))
    return PartialCorrelation(r, float(2 * t_dist.sf(abs(t_stat), dof)), n, dof, n_dropped)
