"""The metric table: how well each scalar metric predicts correctness, and accuracy by quintile."""

from __future__ import annotations

import numpy as np
import pandas as pd

from thinkscope.analysis.load import ScoredRun
from thinkscope.stats import (
    accuracy_by_quantile,
    auroc,
    binned_correlation,
    delong_test,
    partial_correlation,
)

N_BINS = 5
"""Quantile bins per question of the binned correlation (the DTR paper's protocol)."""
WINDOWED = ("group-conf-lowest", "bottom10-conf", "tail-conf")
"""DeepConf metrics over a window of tokens: on traces no longer than it, the mean token
confidence (``token-conf``)."""
COLUMNS = [
    "metric",
    "base",
    "n",
    "n_nan",
    "auroc",
    "auroc_lo",
    "auroc_hi",
    "r_binned",
    "r_binned_std",
    "questions_used",
    "partial_r",
    "partial_p",
    "delong_p_vs_dtr",
    "note",
]


def covariates(scored: ScoredRun) -> pd.DataFrame:
    """``length`` (the scored column, else ``n_tokens``) and perplexity = exp(-mean logprob)."""
    traces = scored.traces
    length = traces["length"] if "length" in traces else traces["n_tokens"]
    mean_logprob = traces["token_logprobs"].map(lambda lp: np.mean(lp) if len(lp) else np.nan)
    return pd.DataFrame(
        {
            "length": length.astype(float).to_numpy(),
            "perplexity": np.exp(-mean_logprob.astype(float).to_numpy()),
        }
    )


def _class_note(y: np.ndarray) -> str | None:
    if len(y) == 0:
        return "no non-NaN values: everything undefined"
    if y.all() or not y.any():
        which = "correct" if y.all() else "wrong"
        return f"all {len(y)} scored samples {which}: AUROC and correlations undefined"
    return None


def metric_row(
    scored: ScoredRun,
    column: str,
    cov: pd.DataFrame,
    resamples: int,
    seed: int,
    seeds: int,
    samples_per_question: int | None,
) -> dict:
    """One row of the table for ``column``; undefined statistics are NaN and said in ``note``."""
    s = scored.traces[column].astype(float).to_numpy()
    y = scored.correct
    result = auroc(s, y, n_resamples=resamples, seed=seed)
    frame = pd.DataFrame({"score": s, "correct": y, "problem_id": scored.traces["problem_id"]})
    binned = binned_correlation(
        frame, "score", n_bins=N_BINS, seeds=seeds, samples_per_question=samples_per_question
    )
    partial = partial_correlation(frame.join(cov), "score", "correct", tuple(cov.columns))
    ref = scored.dtr_column
    delong = delong_test(s, scored.traces[ref], y) if ref and ref != column else None

    notes = [f"{result.n_nan} NaN value(s) left out"] if result.n_nan else []
    class_note = _class_note(y[~np.isnan(s)])
    if class_note:
        notes.append(class_note)
    else:
        if np.isnan(binned.r):
            skipped = ", ".join(f"{k}: {v}" for k, v in binned.skipped.items())
            notes.append(f"r_binned undefined (questions skipped, {skipped})")
        if partial.undefined_reason:
            own = column in cov.columns
            why = f"{column} is itself a covariate" if own else partial.undefined_reason
            notes.append(f"partial r undefined ({why})")
        if delong is not None and delong.undefined_reason:
            notes.append(f"DeLong undefined ({delong.undefined_reason})")
    return {
        "metric": column,
        "base": scored.metrics[column].get("metric", column),
        "n": result.n,
        "n_nan": result.n_nan,
        "auroc": result.auroc,
        "auroc_lo": result.lo,
        "auroc_hi": result.hi,
        "r_binned": binned.r,
        "r_binned_std": binned.r_std,
        "questions_used": binned.n_questions_used,
        "partial_r": partial.r,
        "partial_p": partial.p,
        "delong_p_vs_dtr": delong.p if delong is not None else np.nan,
        "note": "; ".join(notes),
    }


def metric_table(
    scored: ScoredRun,
    resamples: int = 10_000,
    seed: int = 0,
    seeds: int = 30,
    samples_per_question: int | None = None,
) -> pd.DataFrame:
    """One row per scored metric column (see :data:`COLUMNS`)."""
    cov = covariates(scored)
    rows = [
        metric_row(scored, c, cov, resamples, seed, seeds, samples_per_question)
        for c in scored.columns
    ]
    for row, extra in zip(rows, sameness_notes(scored), strict=True):
        row["note"] = "; ".join(n for n in (extra, row["note"]) if n)
    return pd.DataFrame(rows, columns=COLUMNS)


def sameness_notes(scored: ScoredRun) -> list[str]:
    """Per metric column: why it carries no information of its own on this run, or ``""``:
    constant on every trace, identical to an earlier column, and for the windowed DeepConf
    metrics, completions no longer than the window."""
    longest = int(scored.traces["n_tokens"].max()) if len(scored.traces) else 0
    values = {c: scored.traces[c].astype(float).to_numpy() for c in scored.columns}
    notes = []
    for i, column in enumerate(scored.columns):
        s, found = values[column], []
        kept = s[~np.isnan(s)]
        if len(kept) > 1 and np.ptp(kept) <= 1e-12 * max(1.0, abs(kept[0])):
            found.append(f"constant ({kept[0]:.4g}) on every trace")
        same = [
            c
            for c in scored.columns[:i]
            if np.allclose(values[c], s, rtol=1e-9, atol=1e-12, equal_nan=True)
        ]
        if same:
            found.append(f"identical to {same[0]} on every trace")
        entry = scored.metrics[column]
        window = entry.get("params", {}).get("window")
        if entry.get("metric") in WINDOWED and window is not None and longest <= int(window):
            found.append(
                f"every completion (at most {longest} tokens) fits in one DeepConf "
                f"window of {window}: this is the mean token confidence"
            )
        notes.append("; ".join(found))
    return notes


def quintile_table(scored: ScoredRun, seed: int = 0) -> pd.DataFrame:
    """Accuracy per score quintile (bin 0 = lowest scores) of every metric with >= 5 values."""
    parts = []
    for column in scored.columns:
        s = scored.traces[column].astype(float).to_numpy()
        if np.count_nonzero(~np.isnan(s)) >= N_BINS:
            part = accuracy_by_quantile(s, scored.correct, q=N_BINS, seed=seed)
            parts.append(part.assign(metric=column))
    if not parts:
        return pd.DataFrame(columns=["metric", "bin", "lo", "hi", "n", "accuracy", "mean_score"])
    out = pd.concat(parts, ignore_index=True)
    return out[["metric", *(c for c in out.columns if c != "metric")]]
