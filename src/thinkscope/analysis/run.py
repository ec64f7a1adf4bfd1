"""``thinkscope analyze DIR``: the metric table, quintiles and figures of a scored run.

Writes ``DIR/analysis/`` (each file atomically)::

    metrics.csv    one row per scalar metric column (see analyze.table.COLUMNS)
    metrics.json   the same rows, quintiles, run summary, settings and notices
    quintiles.csv  accuracy by metric quintile
    figures/*.png  see thinkscope.analysis.figures

Measured on the shared 2-core dev machine: 1,000 traces (250 questions x 4, ~150 tokens, L=30),
13 metric columns, 10,000 resamples: 2.2-2.9 s in all, figures included.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from thinkscope.analysis.load import ScoredRun, load_scored, load_token_metrics
from thinkscope.analysis.table import N_BINS, metric_table, quintile_table
from thinkscope.core.atomic import atomic_write, write_json


@dataclass
class Analysis:
    """What :func:`analyze_run` wrote to ``path`` (``DIR/analysis``)."""

    path: Path
    metrics: pd.DataFrame
    quintiles: pd.DataFrame
    notices: list[str]
    figures: list[str]


def _records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))  # NaN -> null, numpy -> plain


def _notices(scored: ScoredRun, table: pd.DataFrame) -> list[str]:
    y, n = scored.correct, len(scored.correct)
    notices = []
    if y.all() or not y.any():
        which = "correct" if y.all() else "wrong"
        notices.append(
            f"all {n} samples are {which}: AUROC, DeLong and the correlations are undefined (NaN)"
        )
    for row in table.itertuples():
        if row.n_nan:
            notices.append(f"{row.metric}: {row.n_nan} of {n} values are NaN and were left out")
    per_question = int(scored.traces.groupby("problem_id").size().max())
    if per_question < N_BINS:
        notices.append(
            f"r_binned needs at least {N_BINS} samples per question (one per bin); "
            f"this run has at most {per_question}"
        )
    if scored.dtr_column is None:
        notices.append(
            "no DTR column: delong_p_vs_dtr is empty and the DTR quintile figure is skipped"
        )
    return notices


def analyze_run(
    path: Path | str,
    resamples: int = 10_000,
    seed: int = 0,
    seeds: int = 30,
    samples_per_question: int | None = None,
) -> Analysis:
    """Compute and write the analysis of the scored run at ``path``."""
    from thinkscope.analysis.figures import draw_figures  # matplotlib only when needed

    started = time.perf_counter()
    scored = load_scored(path)
    table = metric_table(scored, resamples, seed, seeds, samples_per_question)
    quintiles = quintile_table(scored, seed)
    notices = _notices(scored, table)
    out = scored.path / "analysis"
    tokens = load_token_metrics(scored)
    figures, skipped = draw_figures(scored, tokens, table, quintiles, out / "figures")
    notices += skipped
    for name, frame in (("metrics.csv", table), ("quintiles.csv", quintiles)):
        atomic_write(out / name, lambda tmp, f=frame: f.to_csv(tmp, index=False))
    write_json(
        out / "metrics.json",
        {
            "run": str(scored.path),
            "n_traces": len(scored.traces),
            "n_problems": int(scored.traces["problem_id"].nunique()),
            "accuracy": float(scored.correct.mean()),
            "settings": {
                "resamples": resamples,
                "seed": seed,
                "seeds": seeds,
                "samples_per_question": samples_per_question,
                "n_bins": N_BINS,
                "reference": scored.dtr_column,
                "covariates": ["length", "perplexity"],
            },
            "metrics": _records(table),
            "quintiles": _records(quintiles),
            "notices": notices,
            "figures": figures,
            "wall_s": round(time.perf_counter() - started, 3),
        },
    )
    return Analysis(out, table, quintiles, notices, figures)
