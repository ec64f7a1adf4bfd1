"""DTR against length and against correctness."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from thinkscope.experiments.common import Experiment, dtr, jsd_matrix, plt, settling_depths
from thinkscope.stats import accuracy_by_quantile, binned_correlation


def _dtr_column(exp: Experiment, traces: pd.DataFrame, tokens: pd.DataFrame) -> pd.DataFrame:
    merged = traces.merge(
        tokens[["problem_id", "sample_idx", "jsd_profile"]], on=["problem_id", "sample_idx"]
    )
    merged["dtr"] = [
        dtr(settling_depths(p, exp.config.g, exp.config.base), p.shape[1], exp.config.rho)
        if len(p)
        else np.nan
        for p in jsd_matrix(merged)
    ]
    return merged


def length_vs_dtr(exp: Experiment) -> pd.DataFrame:
    """Pearson and Spearman correlation of completion length with DTR, and a scatter."""
    _, traces, tokens = exp.scored_run("main")
    frame = _dtr_column(exp, traces, tokens).dropna(subset=["dtr"])
    pearson = scipy_stats.pearsonr(frame["n_tokens"], frame["dtr"])
    spearman = scipy_stats.spearmanr(frame["n_tokens"], frame["dtr"])
    table = pd.DataFrame(
        [
            {
                "n": len(frame),
                "pearson_r": pearson.statistic,
                "pearson_p": pearson.pvalue,
                "spearman_rho": spearman.statistic,
                "spearman_p": spearman.pvalue,
            }
        ]
    )
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for ok, colour, label in ((True, "#55a868", "correct"), (False, "#c44e52", "wrong")):
        part = frame[frame["correct"] == ok]
        ax.scatter(part["n_tokens"], part["dtr"], s=10, alpha=0.6, color=colour, label=label)
    ax.set_xlabel("completion length (tokens)")
    ax.set_ylabel("DTR")
    ax.set_title(f"Length vs DTR (Pearson r = {pearson.statistic:.2f})", fontsize=10)
    ax.legend(fontsize=8)
    return exp.finish(table, exp.figure("length_vs_dtr", fig))


def dtr_accuracy(exp: Experiment) -> pd.DataFrame:
    """The DTR paper's protocol (5 quantile bins a question, 30 seeds); accuracy by quintile."""
    _, traces, tokens = exp.scored_run("main")
    frame = _dtr_column(exp, traces, tokens)
    frame["length"] = frame["n_tokens"].astype(float)
    protocol = {col: binned_correlation(frame, col) for col in ("dtr", "length")}
    quintiles = accuracy_by_quantile(frame["dtr"].to_numpy(float), frame["correct"].to_numpy(bool))
    quintiles.to_csv(exp.out / "quintiles.csv", index=False)
    table = pd.DataFrame(
        [
            {
                "metric": col,
                "r_binned": res.r,
                "r_std": res.r_std,
                "questions_used": res.n_questions_used,
                "questions_skipped": res.n_questions_skipped,
            }
            for col, res in protocol.items()
        ]
    )
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(quintiles["bin"].astype(str), quintiles["accuracy"], color="#4c72b0")
    ax.set_xlabel("DTR quintile (low to high)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"Accuracy by DTR quintile (binned r = {protocol['dtr'].r:.2f})", fontsize=10)
    return exp.finish(table, exp.figure("accuracy_by_dtr_quintile", fig))
