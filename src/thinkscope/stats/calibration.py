"""Rank calibration of next-token predictions (after "Sample Smart, Not Hard").

Tokens are binned by their top-1 probability: bin = n_bins - 1 - floor(n_bins * p_max), clipped
to 0..n_bins-1, so bin 0 holds the most confident tokens (p_max >= 0.9 with 10 bins) and p_max
= 1 falls in bin 0. Ranks are 1-based: rank 1 means the correct token was the top-1 guess.
"""

from dataclasses import dataclass

import numpy as np

from thinkscope.stats._checks import as_float, same_length


@dataclass(frozen=True)
class CalibrationGrid:
    """``prob[b, r-1]`` = P(correct token at rank r | bin b), NaN for an empty bin.

    ``count[b]`` is the number of tokens in bin b; ranks above ``max_rank`` count in the
    denominator but fall in no column, so a row can sum to less than 1.
    """

    prob: np.ndarray
    count: np.ndarray


def calibration_grid(
    top_probs, correct_rank, n_bins: int = 10, max_rank: int = 10
) -> CalibrationGrid:
    """Rank-wise probability that the correct token is at rank r, per top-1-probability bin."""
    p = as_float(top_probs, "top_probs")
    rank_f = as_float(correct_rank, "correct_rank")
    same_length(top_probs=p, correct_rank=rank_f)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("top_probs must be probabilities in [0, 1]")
    if np.isnan(rank_f).any() or (rank_f != np.round(rank_f)).any() or (rank_f < 1).any():
        raise ValueError("correct_rank must be whole numbers >= 1 (1 = top-1)")
    rank = rank_f.astype(np.intp)
    bins = np.clip(n_bins - 1 - np.floor(n_bins * p).astype(int), 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    inside = rank <= max_rank
    hits = np.zeros((n_bins, max_rank))
    np.add.at(hits, (bins[inside], rank[inside] - 1), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = hits / count[:, None]
    return CalibrationGrid(prob=prob, count=count)


def fit_power_law(p, c) -> tuple[float, float]:
    """Least-squares fit of log10 c = A + B log10 p; returns (A, B).

    Points where p or c is not a positive finite number (e.g. an empty grid cell) are ignored;
    at least two distinct p values must remain.
    """
    p, c = as_float(p, "p"), as_float(c, "c")
    same_length(p=p, c=c)
    ok = np.isfinite(p) & np.isfinite(c) & (p > 0) & (c > 0)
    if len(np.unique(p[ok])) < 2:
        raise ValueError("need at least two distinct positive p values to fit a power law")
    lp, lc = np.log10(p[ok]), np.log10(c[ok])
    b, a = np.polyfit(lp, lc, 1)
    return float(a), float(b)
