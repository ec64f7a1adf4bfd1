"""Paired statistics of a base-versus-tuned comparison: wins/losses, McNemar."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from thinkscope.core.errors import UserError


@dataclass(frozen=True)
class McNemar:
    """Paired greedy correctness: ``table[[both, base only], [tuned only, neither]]``."""

    both: int
    base_only: int
    tuned_only: int
    neither: int
    statistic: float
    pvalue: float
    exact: bool


def mcnemar_paired(base: pd.Series, tuned: pd.Series) -> McNemar:
    """McNemar's test (statsmodels) on two boolean series indexed by question.

    Exact (binomial) when fewer than 25 questions disagree, else chi-square with continuity
    correction.
    """
    from statsmodels.stats.contingency_tables import mcnemar

    if not base.index.equals(tuned.index):
        raise UserError("McNemar needs both models graded on the same questions")
    b, t = base.to_numpy(bool), tuned.to_numpy(bool)
    table = np.array([[np.sum(b & t), np.sum(b & ~t)], [np.sum(~b & t), np.sum(~b & ~t)]])
    exact = int(table[0, 1] + table[1, 0]) < 25
    result = mcnemar(table, exact=exact, correction=True)
    return McNemar(
        both=int(table[0, 0]),
        base_only=int(table[0, 1]),
        tuned_only=int(table[1, 0]),
        neither=int(table[1, 1]),
        statistic=float(result.statistic),
        pvalue=float(result.pvalue),
        exact=exact,
    )


def per_question(base: pd.DataFrame, tuned: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each question under both models and who wins it (``tuned``/``base``/``tie``)."""
    acc = pd.DataFrame(
        {
            "base": base.groupby("problem_id", sort=False)["correct"].mean(),
            "tuned": tuned.groupby("problem_id", sort=False)["correct"].mean(),
        }
    )
    if acc.isna().any().any():
        raise UserError("the two runs hold different questions: compare needs the same problems")
    acc["winner"] = np.select(
        [acc["tuned"] > acc["base"], acc["tuned"] < acc["base"]], ["tuned", "base"], "tie"
    )
    return acc.rename_axis("problem_id").reset_index()
