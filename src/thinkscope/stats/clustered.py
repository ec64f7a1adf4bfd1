"""Bootstrap over questions: the samples of one question are not independent, so a CI of a
mean over samples resamples whole questions (each with all its samples)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from thinkscope.stats.auroc import bootstrap_indices

RESAMPLES = 2000
ALPHA = 0.05


def cluster_bootstrap(
    groups, values, n_resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, np.ndarray]:
    """The mean of ``values`` (NaN left out) and its ``[n_resamples]`` bootstrap replicates,
    resampling the groups (questions) with replacement (:func:`bootstrap_indices`)."""
    codes, uniques = pd.factorize(pd.Series(groups), sort=False)
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    sums = np.bincount(codes[ok], weights=values[ok], minlength=len(uniques))
    counts = np.bincount(codes[ok], minlength=len(uniques)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = np.concatenate(
            [
                sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
                for idx in bootstrap_indices(len(uniques), n_resamples, seed)
            ]
        )
        return float(sums.sum() / counts.sum()), replicates


def percentile_ci(replicates: np.ndarray, alpha: float = ALPHA) -> tuple[float, float]:
    """The ``1 - alpha`` percentile interval of the (non-NaN) bootstrap replicates."""
    valid = replicates[~np.isnan(replicates)]
    if not len(valid):
        return float("nan"), float("nan")
    lo, hi = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
