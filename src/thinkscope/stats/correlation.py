"""Binned score-vs-accuracy correlation, per question (the DTR paper's protocol).

Binning is by rank, not by value: samples are sorted by score, tied scores are put in a
random (seeded) order, and the sorted list is cut like ``np.array_split`` into ``n_bins``
contiguous bins whose sizes differ by at most one (equal when ``n_bins`` divides the count).
Tied scores can therefore straddle a bin edge; every bin still gets its share of samples.
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from thinkscope.stats._checks import as_binary, as_float, require_columns, same_length

SKIP_REASONS = (
    "too_few_samples",
    "all_correct",
    "all_wrong",
    "tied_scores",
    "undefined_every_seed",
)
"""Why a question gives no r, checked in this order (the first that applies is counted)."""


@dataclass(frozen=True)
class BinnedCorrelation:
    """Result of :func:`binned_correlation`.

    ``r`` is the mean over seeds of each seed's mean r over questions (NaN if no question
    has one), ``r_std`` the standard deviation of those per-seed means (ddof=1; 0 with one
    seed). ``n_evaluations`` counts the (question, seed) pairs with a defined r;
    ``n_undefined`` the pairs of otherwise usable questions whose r was undefined for that
    seed (e.g. a subsample that is all correct, or bins with equal accuracy).
    ``n_nan_scores`` counts rows dropped for a NaN score.
    """

    r: float
    r_std: float
    n_questions: int
    n_questions_used: int
    n_questions_skipped: int
    skipped: dict[str, int]
    n_evaluations: int
    n_undefined: int
    n_nan_scores: int
    r_by_seed: np.ndarray = field(repr=False)


def _rank_bins(s: np.ndarray, n_bins: int, tie_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each sample (0 = lowest scores) and the bin sizes, as described above."""
    order = np.lexsort((tie_keys, s))
    q, rem = divmod(len(s), n_bins)
    sizes = np.array([q + 1] * rem + [q] * (n_bins - rem))
    bins = np.empty(len(s), dtype=np.intp)
    bins[order] = np.repeat(np.arange(n_bins), sizes)
    return bins, sizes


def _question_r(s: np.ndarray, c: np.ndarray, n_bins: int, tie_keys: np.ndarray) -> float:
    """Pearson r between bin mean score and bin accuracy; NaN when either is constant."""
    bins, sizes = _rank_bins(s, n_bins, tie_keys)
    acc = np.bincount(bins, weights=c, minlength=n_bins) / sizes
    if s.min() == s.max() or acc.min() == acc.max():
        return np.nan
    mean_score = np.bincount(bins, weights=s, minlength=n_bins) / sizes
    dx, dy = mean_score - mean_score.mean(), acc - acc.mean()
    den = np.sqrt((dx @ dx) * (dy @ dy))
    return float(dx @ dy / den) if den > 0 else np.nan


def _pool_reason(s: np.ndarray, c: np.ndarray, min_n: int) -> str | None:
    if len(s) < min_n:
        return "too_few_samples"
    if c.all():
        return "all_correct"
    if not c.any():
        return "all_wrong"
    if s.min() == s.max():
        return "tied_scores"
    return None


def binned_correlation(
    df: pd.DataFrame,
    score_col: str,
    correct_col: str = "correct",
    question_col: str = "problem_id",
    n_bins: int = 5,
    seeds: int = 30,
    samples_per_question: int | None = None,
) -> BinnedCorrelation:
    """Mean per-question Pearson r between binned score and binned accuracy.

    For each seed and each question: optionally draw ``samples_per_question`` of its samples
    without replacement (the paper: 25 per question, 30 seeds), bin them into ``n_bins``
    rank bins by score, and correlate bin mean score with bin accuracy. r is averaged over
    questions within a seed, then over seeds.

    A question is skipped (and counted in ``skipped`` by the first reason in
    :data:`SKIP_REASONS`) when, after dropping NaN scores, it has fewer samples than
    ``samples_per_question`` (or ``n_bins``), is all correct, all wrong, has all scores tied,
    or its r is undefined in every seed.

    Random stream, for exact replay: for seed s, ``rng = np.random.default_rng(s)``; questions
    are visited in sorted question order, skipping those excluded above; each takes
    ``rng.choice(len(pool), k, replace=False)`` (only if k is set) then ``rng.random(m)``
    tie-break keys, where ``pool`` is the question's non-NaN rows in frame order.
    """
    require_columns(df, [score_col, correct_col, question_col])
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    k = samples_per_question
    if k is not None and k < n_bins:
        raise ValueError(f"samples_per_question ({k}) must be >= n_bins ({n_bins})")
    scores = as_float(df[score_col].to_numpy(), score_col)
    correct = as_binary(df[correct_col].to_numpy(), correct_col)
    codes, uniques = pd.factorize(df[question_col], sort=True)
    if (codes < 0).any():
        raise ValueError(f"{question_col} has missing question ids")
    nan = np.isnan(scores)

    skipped: Counter[str] = Counter()
    pools = []
    order = np.argsort(codes, kind="stable")
    for rows in np.split(order, np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]):
        rows = rows[~nan[rows]]
        s, c = scores[rows], correct[rows]
        reason = _pool_reason(s, c, k or n_bins)
        if reason is None:
            pools.append((s, c))
        else:
            skipped[reason] += 1

    r = np.full((seeds, len(pools)), np.nan)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        for j, (s, c) in enumerate(pools):
            if k is not None:
                pick = rng.choice(len(s), size=k, replace=False)
                s, c = s[pick], c[pick]
            r[seed, j] = _question_r(s, c, n_bins, rng.random(len(s)))

    defined = ~np.isnan(r)
    used = defined.any(axis=0)
    if (~used).any():
        skipped["undefined_every_seed"] += int((~used).sum())
    with np.errstate(invalid="ignore"):
        r_by_seed = np.nansum(r, axis=1) / defined.sum(axis=1)  # 0/0 -> NaN: no question
    valid = r_by_seed[~np.isnan(r_by_seed)]
    return BinnedCorrelation(
        r=float(valid.mean()) if len(valid) else np.nan,
        r_std=float(valid.std(ddof=1)) if len(valid) > 1 else (0.0 if len(valid) else np.nan),
        n_questions=len(uniques),
        n_questions_used=int(used.sum()),
        n_questions_skipped=len(uniques) - int(used.sum()),
        skipped={reason: skipped[reason] for reason in SKIP_REASONS if skipped[reason]},
        n_evaluations=int(defined.sum()),
        n_undefined=int((~defined[:, used]).sum()),
        n_nan_scores=int(nan.sum()),
        r_by_seed=r_by_seed,
    )


def accuracy_by_quantile(scores, correct, q: int = 5, seed: int = 0) -> pd.DataFrame:
    """Accuracy per score quantile bin over all samples pooled.

    Rank bins as in the module docstring (ties broken with ``default_rng(seed).random``);
    columns: bin (0 = lowest scores), lo, hi (score range in the bin), n, accuracy,
    mean_score. NaN scores are dropped; their count is in ``result.attrs["n_nan"]``.
    """
    s = as_float(scores, "scores")
    c = as_binary(correct, "correct")
    same_length(scores=s, correct=c)
    keep = ~np.isnan(s)
    s, c = s[keep], c[keep]
    if len(s) < q:
        raise ValueError(f"need at least q={q} samples with a score, got {len(s)}")
    bins, sizes = _rank_bins(s, q, np.random.default_rng(seed).random(len(s)))
    out = pd.DataFrame(
        {
            "bin": np.arange(q),
            "lo": pd.Series(s).groupby(bins).min().to_numpy(),
            "hi": pd.Series(s).groupby(bins).max().to_numpy(),
            "n": sizes,
            "accuracy": np.bincount(bins, weights=c, minlength=q) / sizes,
            "mean_score": np.bincount(bins, weights=s, minlength=q) / sizes,
        }
    )
    out.attrs["n_nan"] = int((~keep).sum())
    return out
