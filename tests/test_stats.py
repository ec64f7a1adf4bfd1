"""thinkscope.stats against independent references (sklearn, plain loops, pROC, closed forms)."""

import importlib
import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm, pearsonr
from scipy.stats import t as t_dist
from sklearn.metrics import roc_auc_score

from thinkscope.core.errors import UserError
from thinkscope.stats import (
    accuracy_by_quantile,
    auroc,
    binned_correlation,
    bootstrap_auroc_ci,
    bootstrap_indices,
    calibration_grid,
    delong_test,
    fit_power_law,
    partial_correlation,
)

# The package re-exports the function `auroc`, which shadows the submodule attribute.
auroc_mod = importlib.import_module("thinkscope.stats.auroc")


def _tied_data(seed: int, n: int, shift: float = 0.6, decimals: int = 1):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.55
    s = np.round(shift * y + rng.normal(size=n), decimals)
    return s, y


# --------------------------------------------------------------------------- AUROC


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_with_ties(seed):
    s, y = _tied_data(seed, 500, decimals=1)
    res = auroc(s, y.astype(int), n_resamples=0)
    assert res.auroc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert (res.n, res.n_pos, res.n_neg, res.n_nan) == (500, y.sum(), (~y).sum(), 0)
    assert math.isnan(res.lo) and res.undefined_reason is None


def test_auroc_drops_and_counts_nan_and_never_flips():
    s, y = _tied_data(3, 400)
    s[[5, 17, 200]] = np.nan
    keep = ~np.isnan(s)
    res = auroc(s, y, n_resamples=200)
    assert res.n_nan == 3 and res.n == 397
    assert res.auroc == pytest.approx(roc_auc_score(y[keep], s[keep]), abs=1e-12)
    assert res.lo <= res.auroc <= res.hi
    flipped = auroc(-s, y, n_resamples=0)
    assert flipped.auroc < 0.5 and flipped.auroc == pytest.approx(1 - res.auroc, abs=1e-12)


def test_auroc_undefined_cases_do_not_crash():
    one_class = auroc([0.1, 0.5, 0.9], [1, 1, 1])
    assert math.isnan(one_class.auroc) and "1 of each class" in one_class.undefined_reason
    all_nan = auroc([np.nan, np.nan], [0, 1])
    assert all_nan.n_nan == 2 and "no samples" in all_nan.undefined_reason
    with pytest.raises(ValueError, match="0/1"):
        auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="length"):
        auroc([0.1, 0.2, 0.3], [0, 1])


def _loop_bootstrap(s, y, n_resamples, seed, max_elements, alpha=0.05):
    """Plain reference: one sklearn AUROC per resample, same resample indices."""
    aucs = []
    for chunk in bootstrap_indices(len(s), n_resamples, seed, max_elements):
        for idx in chunk:
            ys = y[idx]
            aucs.append(roc_auc_score(ys, s[idx]) if 0 < ys.sum() < len(ys) else np.nan)
    aucs = np.array(aucs)
    valid = aucs[~np.isnan(aucs)]
    return aucs, np.quantile(valid, [alpha / 2, 1 - alpha / 2])


@pytest.mark.parametrize(("n", "n_resamples"), [(300, 700), (8, 300)])
def test_bootstrap_equals_plain_loop_on_same_indices(monkeypatch, n, n_resamples):
    s, y = _tied_data(4, n)
    max_elements = n * 64  # several chunks, the last one partial
    monkeypatch.setattr(auroc_mod, "MAX_CHUNK_ELEMENTS", max_elements)
    ci = bootstrap_auroc_ci(s, y, n_resamples=n_resamples, seed=11)
    ref_aucs, (ref_lo, ref_hi) = _loop_bootstrap(s, y, n_resamples, 11, max_elements)
    np.testing.assert_array_equal(np.isnan(ci.aucs), np.isnan(ref_aucs))
    np.testing.assert_allclose(ci.aucs, ref_aucs, rtol=0, atol=1e-12)
    assert ci.n_valid == int((~np.isnan(ref_aucs)).sum())
    assert ci.lo == pytest.approx(ref_lo, abs=1e-12) and ci.hi == pytest.approx(ref_hi, abs=1e-12)
    if n == 8:
        assert ci.n_valid < n_resamples  # some resamples drew a single class


def test_bootstrap_ci_coverage_is_sane():
    # Binormal model, unit variances, mean shift d: true AUROC = Phi(d / sqrt(2)).
    d = 0.8
    true_auc = norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(123)
    hits, reps = 0, 200
    for rep in range(reps):
        y = rng.random(200) < 0.5
        s = d * y + rng.normal(size=200)
        ci = bootstrap_auroc_ci(s, y, n_resamples=500, seed=rep)
        hits += ci.lo <= true_auc <= ci.hi
    assert 0.88 <= hits / reps <= 0.99


def test_bootstrap_10k_resamples_on_2000_samples_is_fast():
    s, y = _tied_data(5, 2000, decimals=3)
    start = time.perf_counter()
    ci = bootstrap_auroc_ci(s, y, n_resamples=10_000)
    assert time.perf_counter() - start < 5.0
    assert ci.n_valid == 10_000 and ci.lo < roc_auc_score(y, s) < ci.hi


# --------------------------------------------------------------------------- DeLong


def _psi(x, z):
    return 1.0 if x > z else 0.5 if x == z else 0.0


def _loop_delong(a, b, y):
    """Plain O(m n) structural-components DeLong with explicit double loops."""
    pos = [i for i in range(len(y)) if y[i]]
    neg = [j for j in range(len(y)) if not y[j]]
    m, n = len(pos), len(neg)
    v10, v01 = [], []
    for s in (a, b):
        v10.append([sum(_psi(s[i], s[j]) for j in neg) / n for i in pos])
        v01.append([sum(_psi(s[i], s[j]) for i in pos) / m for j in neg])
    auc = [sum(v) / m for v in v10]

    def cov(v, r, q, size):
        mean_r, mean_q = sum(v[r]) / size, sum(v[q]) / size
        return sum((v[r][k] - mean_r) * (v[q][k] - mean_q) for k in range(size)) / (size - 1)

    s_ab = [[cov(v10, r, q, m) / m + cov(v01, r, q, n) / n for q in (0, 1)] for r in (0, 1)]
    var = s_ab[0][0] + s_ab[1][1] - 2 * s_ab[0][1]
    z = (auc[0] - auc[1]) / math.sqrt(var)
    return auc[0], auc[1], var, z, 2 * norm.sf(abs(z))


@pytest.mark.parametrize("seed", [0, 1])
def test_delong_matches_plain_structural_components(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(150) < 0.4
    a = np.round(0.8 * y + rng.normal(size=150), 1)  # heavy ties within and across classes
    b = np.round(0.5 * a + rng.normal(size=150), 0)
    res = delong_test(a, b, y)
    auc_a, auc_b, var, z, p = _loop_delong(a, b, y)
    assert res.auc_a == pytest.approx(auc_a, rel=1e-12)
    assert res.auc_b == pytest.approx(auc_b, rel=1e-12)
    assert res.var == pytest.approx(var, rel=1e-10)
    assert res.z == pytest.approx(z, rel=1e-10)
    assert res.p == pytest.approx(p, rel=1e-10)


# pROC's aSAH data (Turck et al. 2010, Intensive Care Med 36:107-115), 113 patients in row
# order: outcome (G = Good, P = Poor), WFNS grade 1-5, S100B in units of 0.01.
_ASAH_OUTCOME = (
    "GGGGPPGPGGPGPPGGPGPPPGPGGGGGGGGGPGGPPGPPGGGGGGGGGPPGGGPGGGPGPGGPPPGPPGPPPPGGGPPGPGGGG"
    "GGPGGGGGGGGGGGGPPPPPPGGGPGGG"
)
_ASAH_WFNS = (
    "11113254125255125225211112121134214541425511241125521251222151125214524414121421232421"
    "451154221113125225552445111"
)
_ASAH_S100B_CENTI = """
    13 14 10 4 13 10 47 16 18 10 12 10 44 71 4 8 49 4 7 33 9 9 7 11 7 17 7 11 13 19 5 16 41
    14 34 35 48 9 96 25 50 46 16 7 43 45 11 8 9 86 52 8 6 13 207 10 14 15 7 6 77 5 9 30 3 9
    4 23 70 9 27 71 8 26 8 16 9 13 10 8 11 33 11 28 7 10 32 22 7 5 24 38 10 15 8 14 10 7 4 19
    56 14 58 32 82 74 15 47 17 44 15 50 48
"""


def test_delong_reproduces_proc_roc_test_on_asah():
    y = np.array([c == "P" for c in _ASAH_OUTCOME])
    wfns = np.array([int(c) for c in _ASAH_WFNS], dtype=float)
    s100b = np.array(_ASAH_S100B_CENTI.split(), dtype=float) / 100
    assert (len(y), y.sum(), len(wfns), len(s100b)) == (113, 41, 113, 113)
    # First rows as printed by head(aSAH) in the pROC documentation.
    assert list(s100b[:6]) == [0.13, 0.14, 0.10, 0.04, 0.13, 0.10]
    assert list(wfns[:6]) == [1, 1, 1, 1, 3, 2] and _ASAH_OUTCOME[:6] == "GGGGPP"
    # pROC: roc.test(roc(outcome, s100b), roc(outcome, wfns), method = "delong")
    #   Z = -2.209, p-value = 0.02718, AUC of roc1 0.7314, AUC of roc2 0.8237.
    res = delong_test(s100b, wfns, y)
    assert round(res.auc_a, 4) == 0.7314 and round(res.auc_b, 4) == 0.8237
    assert round(res.z, 3) == -2.209 and round(res.p, 5) == 0.02718
    auc_a, auc_b, var, z, p = _loop_delong(s100b, wfns, y)
    assert (res.var, res.z, res.p) == pytest.approx((var, z, p), rel=1e-10)


def test_delong_degenerate_cases():
    s, y = _tied_data(6, 200)
    same = delong_test(s, 2 * s + 1, y)  # identical ranking: no difference, zero variance
    assert (same.diff, same.var, same.z, same.p) == (0.0, 0.0, 0.0, 1.0)
    one = delong_test([0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [1, 1, 0])
    assert math.isnan(one.z) and "2 of each class" in one.undefined_reason
    b = -s.copy()
    b[:4] = np.nan
    res = delong_test(s, b, y)
    assert res.n_nan == 4 and res.n == 196
    assert res.auc_a == pytest.approx(roc_auc_score(y[4:], s[4:]), abs=1e-12)


# --------------------------------------------------------------------------- binned r


def _loop_question_r(s, c, n_bins, tie_keys=None):
    order = np.argsort(s, kind="stable") if tie_keys is None else np.lexsort((tie_keys, s))
    parts = np.array_split(order, n_bins)
    acc = np.array([c[p].mean() for p in parts])
    mean_score = np.array([s[p].mean() for p in parts])
    if np.ptp(s) == 0 or np.ptp(acc) == 0:
        return np.nan
    return np.corrcoef(mean_score, acc)[0, 1]


def _frame(seed, n_questions, per_question, decimals=None):
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_questions):
        s = rng.normal(size=per_question)
        if decimals is not None:
            s = np.round(s, decimals)
        p = 1 / (1 + np.exp(-(1.5 * s + rng.normal())))
        for score, ok in zip(s, rng.random(per_question) < p, strict=True):
            rows.append({"problem_id": f"q{q:03d}", "dtr": score, "correct": bool(ok)})
    return pd.DataFrame(rows)


def _degenerate_questions():
    return pd.DataFrame(
        {
            "problem_id": ["all_ok"] * 10
            + ["all_bad"] * 10
            + ["tied"] * 10
            + ["few"] * 3
            + ["nan"] * 4,
            "dtr": list(np.arange(10.0)) * 2 + [1.0] * 10 + [1.0, 2.0, 3.0] + [np.nan] * 4,
            "correct": [True] * 10
            + [False] * 10
            + [True, False] * 5
            + [True, False, True]
            + [True, False] * 2,
        }
    )


def test_binned_correlation_equals_plain_loop_without_resampling():
    df = _frame(0, 40, 20)
    df.loc[df.index[:3], "dtr"] = np.nan  # three NaN scores in q000
    df = pd.concat([df, _degenerate_questions()], ignore_index=True)
    res = binned_correlation(df, "dtr", seeds=3)

    rs = []
    for _, g in df.dropna(subset=["dtr"]).groupby("problem_id"):
        s, c = g["dtr"].to_numpy(), g["correct"].to_numpy(float)
        if len(s) >= 5 and 0 < c.sum() < len(c):
            rs.append(_loop_question_r(s, c, 5))
    rs = np.array(rs)
    assert res.r == pytest.approx(np.nanmean(rs), abs=1e-12)
    np.testing.assert_allclose(res.r_by_seed, np.nanmean(rs), atol=1e-12)  # no ties: seed-free
    assert res.r_std == pytest.approx(0.0, abs=1e-12)
    assert res.n_questions == 45 and res.n_nan_scores == 7
    assert res.n_questions_used == int((~np.isnan(rs)).sum())
    assert res.skipped["all_correct"] == 1 and res.skipped["all_wrong"] == 1
    assert res.skipped["tied_scores"] == 1 and res.skipped["too_few_samples"] == 2
    assert res.n_questions_used + res.n_questions_skipped == res.n_questions
    assert sum(res.skipped.values()) == res.n_questions_skipped
    assert res.n_evaluations == 3 * res.n_questions_used and res.n_undefined == 0


def test_binned_correlation_with_resampling_equals_replayed_loop():
    df = _frame(1, 30, 32, decimals=1)  # rounded scores: ties cross bin edges
    k, n_bins, seeds = 25, 5, 4
    res = binned_correlation(df, "dtr", seeds=seeds, samples_per_question=k)

    pools = []
    for _, g in df.groupby("problem_id"):
        s, c = g["dtr"].to_numpy(), g["correct"].to_numpy(float)
        if 0 < c.sum() < len(c) and np.ptp(s) > 0:
            pools.append((s, c))
    per_seed = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        rs = []
        for s, c in pools:
            pick = rng.choice(len(s), size=k, replace=False)
            rs.append(_loop_question_r(s[pick], c[pick], n_bins, rng.random(k)))
        per_seed.append(np.nanmean(rs))
    np.testing.assert_allclose(res.r_by_seed, per_seed, rtol=0, atol=1e-12)
    assert res.r == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert res.r_std == pytest.approx(np.std(per_seed, ddof=1), abs=1e-12)
    assert res.r > 0  # the synthetic score does predict correctness


def test_binned_correlation_all_degenerate_gives_nan_not_a_crash():
    res = binned_correlation(_degenerate_questions(), "dtr", seeds=2, samples_per_question=5)
    assert math.isnan(res.r) and math.isnan(res.r_std) and res.n_questions_used == 0
    assert res.n_questions_skipped == 5 and res.n_evaluations == 0
    with pytest.raises(UserError, match="missing column"):
        binned_correlation(_degenerate_questions(), "nope")


def test_accuracy_by_quantile_equal_bins_despite_ties():
    s = np.array([0.0] * 6 + [1.0] * 4 + [np.nan])
    c = np.array([1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1])
    table = accuracy_by_quantile(s, c, q=5)
    assert list(table["n"]) == [2] * 5 and table.attrs["n_nan"] == 1
    assert list(table["lo"]) == [0, 0, 0, 1, 1] and list(table["hi"]) == [0, 0, 0, 1, 1]
    assert table["accuracy"].iloc[:3].mean() == pytest.approx(0.5)  # the six tied zeros
    assert table["accuracy"].iloc[3:].mean() == pytest.approx(0.75)
    assert list(table["mean_score"]) == [0, 0, 0, 1, 1]


# --------------------------------------------------------------------------- partial r


def test_partial_correlation_matches_inverse_correlation_matrix():
    rng = np.random.default_rng(7)
    n = 300
    length = rng.gamma(4, 500, n)
    perplexity = 1 + rng.gamma(2, 0.5, n) + 1e-4 * length
    dtr = 0.2 + 1e-4 * length - 0.05 * perplexity + rng.normal(0, 0.1, n)
    correct = rng.random(n) < 1 / (1 + np.exp(-(5 * dtr - 1e-3 * length)))
    df = pd.DataFrame({"dtr": dtr, "correct": correct, "length": length, "perplexity": perplexity})
    res = partial_correlation(df, "dtr")

    prec = np.linalg.inv(
        np.corrcoef(df[["dtr", "correct", "length", "perplexity"]].T.to_numpy(float))
    )
    r_ref = -prec[0, 1] / np.sqrt(prec[0, 0] * prec[1, 1])
    dof = n - 2 - 2
    p_ref = 2 * t_dist.sf(abs(r_ref) * np.sqrt(dof / (1 - r_ref**2)), dof)
    assert (res.n, res.dof, res.n_dropped) == (n, dof, 0)
    assert res.r == pytest.approx(r_ref, rel=1e-10) and res.p == pytest.approx(p_ref, rel=1e-9)

    plain = partial_correlation(df, "dtr", covariates=())
    ref = pearsonr(df["dtr"], df["correct"].astype(float))
    assert (plain.r, plain.p) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-10)


def test_partial_correlation_nan_rows_and_degenerate_cases():
    rng = np.random.default_rng(8)
    df = pd.DataFrame(rng.normal(size=(50, 3)), columns=["dtr", "length", "perplexity"])
    df["correct"] = rng.random(50) < 0.5
    df.loc[[1, 2], "length"] = np.nan
    res = partial_correlation(df, "dtr")
    assert (res.n, res.n_dropped, res.dof) == (48, 2, 44) and res.undefined_reason is None
    df["correct"] = True
    assert "constant" in partial_correlation(df, "dtr").undefined_reason
    assert "complete rows" in partial_correlation(df.iloc[:4], "dtr").undefined_reason


# --------------------------------------------------------------------------- calibration


def test_calibration_grid_hand_computed():
    top = [0.95, 0.91, 1.0, 0.55, 0.5, 0.05, 0.42]
    rank = [1, 2, 1, 1, 3, 12, 1]
    # bins: 9 - floor(10 p) clipped -> [0, 0, 0, 4, 4, 9, 5]
    grid = calibration_grid(top, rank, n_bins=10, max_rank=3)
    assert list(grid.count) == [3, 0, 0, 0, 2, 1, 0, 0, 0, 1]
    np.testing.assert_allclose(grid.prob[0], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(grid.prob[4], [0.5, 0, 0.5])
    np.testing.assert_allclose(grid.prob[5], [1, 0, 0])
    np.testing.assert_allclose(grid.prob[9], [0, 0, 0])  # rank 12 is beyond max_rank
    assert np.isnan(grid.prob[[1, 2, 3, 6, 7, 8]]).all()
    with pytest.raises(ValueError, match=">= 1"):
        calibration_grid([0.5], [0])


def test_fit_power_law_recovers_parameters():
    p = np.logspace(-3, 0, 25)
    a, b = fit_power_law(p, 10**-0.7 * p**1.3)
    assert (a, b) == pytest.approx((-0.7, 1.3), abs=1e-10)
    noisy = 10**0.2 * p**-0.5 * np.exp(np.random.default_rng(9).normal(0, 0.01, 25))
    c = np.append(noisy, 0.0)  # an empty cell (c = 0) is ignored
    a, b = fit_power_law(np.append(p, 0.5), c)
    assert a == pytest.approx(0.2, abs=0.02) and b == pytest.approx(-0.5, abs=0.02)
