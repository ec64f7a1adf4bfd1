"""The card's numbers from per-sample values: means over questions and AUROCs, each with its
95% CI and, where it is undefined, the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd

from thinkscope.profile.section import Stat
from thinkscope.stats import auroc, cluster_bootstrap, percentile_ci

RESAMPLES = 2000
QUESTION_BOOTSTRAP = "bootstrap over questions"


def question_mean(problem_ids, values, unit: str = "", seed: int = 0) -> Stat:
    """The mean of ``values`` over samples (NaN left out), its CI from resampling whole
    questions, and each question's own mean (what ``profile diff`` pairs)."""
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    if not ok.any():
        return Stat.undefined(f"no defined value among {len(values)} samples", len(values), unit)
    ids = pd.Series(problem_ids).astype(str)
    mean, replicates = cluster_bootstrap(ids, values, RESAMPLES, seed)
    lo, hi = percentile_ci(replicates)
    per_question = pd.Series(values[ok]).groupby(ids[ok].to_numpy()).mean()
    return Stat(
        mean,
        lo,
        hi,
        n=int(ok.sum()),
        unit=unit,
        method=QUESTION_BOOTSTRAP,
        per_question=per_question.to_dict(),
    )


def class_means(name: str, problem_ids, values, correct, unit: str = "") -> dict[str, Stat]:
    """``NAME.correct`` and ``NAME.wrong``: :func:`question_mean` over each class's samples,
    undefined for a class without samples."""
    ids, values = pd.Series(problem_ids).reset_index(drop=True), np.asarray(values, np.float64)
    correct = np.asarray(correct, bool)
    stats = {}
    for label, mask in (("correct", correct), ("wrong", ~correct)):
        stats[f"{name}.{label}"] = (
            question_mean(ids[mask], values[mask], unit)
            if mask.any()
            else Stat.undefined(f"no {label} sample", 0, unit)
        )
    return stats


def auroc_stat(scores, correct, seed: int = 0) -> Stat:
    """AUROC of ``scores`` for a correct answer, with its bootstrap CI over samples; undefined
    (with the reason) when every sample is correct, every one wrong, or the score constant."""
    scores = np.asarray(scores, dtype=np.float64)
    result = auroc(scores, np.asarray(correct, bool), n_resamples=RESAMPLES, seed=seed)
    if result.undefined_reason:
        return Stat.undefined(result.undefined_reason, result.n)
    defined = scores[~np.isnan(scores)]
    if np.ptp(defined) == 0:
        return Stat.undefined(f"the score is constant ({defined[0]:.4g}) on every sample", result.n)
    return Stat(result.auroc, result.lo, result.hi, n=result.n, method="bootstrap over samples")
