"""AUROC of a per-sample score for predicting correctness: point value, bootstrap CI, DeLong test.

Direction: a *higher* score is taken to predict label 1 (correct). A metric whose low values
predict correctness therefore gets AUROC < 0.5; nothing is flipped silently. Tied scores count
one half (midranks), as in the Mann-Whitney U statistic. NaN scores are dropped and counted.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm, rankdata

from thinkscope.stats._checks import as_binary, as_float, same_length

MAX_CHUNK_ELEMENTS = 1 << 18
"""Bootstrap resample indices handled at once (1 MiB of int32: cache-sized, fastest here)."""


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap interval; ``aucs`` holds every resample's AUROC (NaN if one class)."""

    lo: float
    hi: float
    n_resamples: int
    n_valid: int
    aucs: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class AurocResult:
    """AUROC with a bootstrap CI (``lo``, ``hi``); NaN with a reason when undefined."""

    auroc: float
    lo: float
    hi: float
    n: int
    n_pos: int
    n_neg: int
    n_nan: int
    undefined_reason: str | None = None


@dataclass(frozen=True)
class DeLongResult:
    """Paired DeLong test of AUROC(a) - AUROC(b); ``var`` is the variance of ``diff``."""

    auc_a: float
    auc_b: float
    diff: float
    z: float
    p: float
    var: float
    n: int
    n_nan: int
    undefined_reason: str | None = None


def _clean(scores, labels) -> tuple[np.ndarray, np.ndarray, int]:
    s = as_float(scores, "scores")
    y = as_binary(labels, "labels")
    same_length(scores=s, labels=y)
    keep = ~np.isnan(s)
    return s[keep], y[keep], int((~keep).sum())


def _one_class_reason(n_pos: int, n_neg: int, need: int = 1) -> str | None:
    if n_pos >= need and n_neg >= need:
        return None
    if n_pos + n_neg == 0:
        return "no samples with a non-NaN score"
    return f"need at least {need} of each class; got {n_pos} positive, {n_neg} negative"


def _groups(s: np.ndarray) -> tuple[np.ndarray, int]:
    """Rank of each sample's distinct score (0 = lowest) and the number of distinct scores."""
    uniq, group = np.unique(s, return_inverse=True)
    return group.ravel(), len(uniq)


def _auc_from_counts(neg: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """AUROC per row from (rows, G) class counts per distinct score (ascending); NaN if one class.

    Mann-Whitney with midranks: 2U = sum_g pos_g * (2 * negatives below g + negatives at g),
    kept in integers so U is exact.
    """
    u2 = np.einsum("ij,ij->i", pos, 2 * np.cumsum(neg, axis=1) - neg)
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    return np.where(pairs > 0, u2 / (2 * np.maximum(pairs, 1)), np.nan)


def bootstrap_indices(
    n: int, n_resamples: int, seed: int = 0, max_elements: int = MAX_CHUNK_ELEMENTS
) -> Iterator[np.ndarray]:
    """Yield the bootstrap plan in chunks of rows: ``rng.integers(0, n, (rows, n))``.

    ``rng = np.random.default_rng(seed)``, ``rows = max(1, max_elements // n)`` (the last
    chunk is shorter) and ``dtype=np.int32`` (int64 from n = 2**30). Anything that replays
    this generator sees the same resamples.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, max_elements // max(n, 1))
    dtype = np.int32 if n < 2**30 else np.int64
    for start in range(0, n_resamples, rows):
        yield rng.integers(0, n, size=(min(rows, n_resamples - start), n), dtype=dtype)


def bootstrap_auroc_ci(
    scores, labels, n_resamples: int = 10_000, alpha: float = 0.05, seed: int = 0
) -> BootstrapCI:
    """Percentile bootstrap CI of the AUROC, resampling (non-NaN) samples with replacement.

    Vectorised: each resample's AUROC is the Mann-Whitney U computed from per-distinct-score
    class counts (one ``bincount`` over a whole chunk of resample indices, see
    :func:`bootstrap_indices`), so no per-resample sort is needed: O(n_resamples * n).
    Resamples that draw a single class have no AUROC; they are left out of the quantiles
    (``n_valid`` counts the rest).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    s, y, _ = _clean(scores, labels)
    n = len(s)
    if n == 0 or n_resamples < 1:
        return BootstrapCI(np.nan, np.nan, max(n_resamples, 0), 0, np.full(0, np.nan))
    group, n_groups = _groups(s)
    aucs = np.empty(n_resamples)
    done = 0
    for idx in bootstrap_indices(n, n_resamples, seed, MAX_CHUNK_ELEMENTS):
        rows = len(idx)
        # key = class * (rows * G) + row * G + group: negatives first, one row per resample
        base = (y * (rows * n_groups) + group).astype(idx.dtype)
        keys = base[idx] + (n_groups * np.arange(rows, dtype=idx.dtype))[:, None]
        counts = np.bincount(keys.ravel(), minlength=2 * rows * n_groups)
        neg, pos = counts.reshape(2, rows, n_groups)
        aucs[done : done + rows] = _auc_from_counts(neg, pos)
        done += rows
    valid = aucs[~np.isnan(aucs)]
    if len(valid) == 0:
        return BootstrapCI(np.nan, np.nan, n_resamples, 0, aucs)
    lo, hi = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return BootstrapCI(float(lo), float(hi), n_resamples, len(valid), aucs)


def auroc(
    scores, labels, n_resamples: int = 10_000, alpha: float = 0.05, seed: int = 0
) -> AurocResult:
    """AUROC of ``scores`` for ``labels`` (1 = correct) with a bootstrap CI.

    NaN scores are dropped and counted in ``n_nan``. With a single class the AUROC is
    undefined: every number is NaN and ``undefined_reason`` says why. ``n_resamples=0``
    skips the bootstrap (``lo``/``hi`` NaN).
    """
    s, y, n_nan = _clean(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    reason = _one_class_reason(n_pos, n_neg)
    if reason is not None:
        return AurocResult(np.nan, np.nan, np.nan, len(s), n_pos, n_neg, n_nan, reason)
    group, n_groups = _groups(s)
    neg, pos = np.bincount(y * n_groups + group, minlength=2 * n_groups).reshape(2, 1, n_groups)
    value = float(_auc_from_counts(neg, pos)[0])
    ci = bootstrap_auroc_ci(s, y, n_resamples, alpha, seed) if n_resamples > 0 else None
    lo, hi = (ci.lo, ci.hi) if ci is not None else (np.nan, np.nan)
    return AurocResult(value, lo, hi, len(s), n_pos, n_neg, n_nan)


def _delong_cov(preds: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs and their DeLong covariance for the rows of ``preds`` (Sun & Xu 2014).

    With midranks Tz (all samples), Tx (positives only), Ty (negatives only), the placement
    values are V10 = (Tz - Tx) / n_neg for positives and V01 = 1 - (Tz - Ty) / n_pos for
    negatives; AUC = mean(V10) and Cov = S10 / n_pos + S01 / n_neg.
    """
    pos, neg = preds[:, y], preds[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    tz = rankdata(preds, axis=1)
    v10 = (tz[:, y] - rankdata(pos, axis=1)) / n
    v01 = 1.0 - (tz[:, ~y] - rankdata(neg, axis=1)) / m
    return v10.mean(axis=1), np.cov(v10) / m + np.cov(v01) / n


def delong_test(scores_a, scores_b, labels) -> DeLongResult:
    """Two-sided DeLong test that two correlated AUROCs on the same samples are equal.

    Samples where either score is NaN are dropped (``n_nan``). Needs at least two samples of
    each class, else everything is NaN with ``undefined_reason``. When the difference has
    zero variance (e.g. two metrics that rank identically), z = 0 and p = 1 if the AUROCs are
    equal, else z = +-inf and p = 0.
    """
    a, b = as_float(scores_a, "scores_a"), as_float(scores_b, "scores_b")
    y = as_binary(labels, "labels")
    same_length(scores_a=a, scores_b=b, labels=y)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b, y = a[keep], b[keep], y[keep]
    n_nan = int((~keep).sum())
    reason = _one_class_reason(int(y.sum()), int((~y).sum()), need=2)
    if reason is not None:
        nan = np.nan
        return DeLongResult(nan, nan, nan, nan, nan, nan, len(y), n_nan, reason)
    aucs, cov = _delong_cov(np.vstack([a, b]), y)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = diff / np.sqrt(var) if var > 0 else 0.0 if diff == 0 else np.copysign(np.inf, diff)
    p = float(2 * norm.sf(abs(z)))
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, float(z), p, var, len(y), n_nan)
