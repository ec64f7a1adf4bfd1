"""The analysis figures (matplotlib, Agg, no pyplot state), one small function each.

Every function returns a :class:`~matplotlib.figure.Figure`, or a string saying why the
figure cannot be drawn for this run (it is then skipped and the reason becomes a notice).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from thinkscope.analysis.load import ScoredRun, TokenMetrics
from thinkscope.core.atomic import atomic_write
from thinkscope.core.figures import CORRECT, NEUTRAL, STYLE, WRONG


def _classes(scored: ScoredRun) -> list[tuple[str, np.ndarray, str]]:
    """(label, trace mask, colour) for correct and wrong, leaving out an empty class."""
    y = scored.correct
    return [
        (f"{name} (n={m.sum()})", m, c)
        for name, m, c in (("correct", y, CORRECT), ("wrong", ~y, WRONG))
        if m.any()
    ]


def auroc_bars(scored: ScoredRun, table: pd.DataFrame) -> Figure | str:
    rows = table.dropna(subset=["auroc"]).sort_values("auroc")
    if rows.empty:
        return "AUROC is undefined for every metric"
    fig = Figure(figsize=(7, 1.2 + 0.38 * len(rows)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))
    colours = [CORRECT if b == "dtr" else NEUTRAL for b in rows["base"]]
    err = np.vstack([rows["auroc"] - rows["auroc_lo"], rows["auroc_hi"] - rows["auroc"]])
    ax.barh(
        y,
        rows["auroc"],
        color=colours,
        height=0.65,
        xerr=np.nan_to_num(err),
        error_kw={"elinewidth": 1, "capsize": 3},
    )
    for yi, value in zip(y, rows["auroc"], strict=True):
        ax.text(0.01, yi, f"{value:.3f}", va="center", color="white", fontsize=8)
    ax.axvline(0.5, color="black", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set(
        yticks=y,
        yticklabels=rows["metric"],
        xlim=(0, 1),
        xlabel="AUROC for predicting a correct answer (95% bootstrap CI)",
        title="Which metric predicts correctness?",
    )
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right")
    return fig


def dtr_quintiles(scored: ScoredRun, quintiles: pd.DataFrame) -> Figure | str:
    column = scored.dtr_column
    rows = quintiles[quintiles["metric"] == column] if column else quintiles.iloc[:0]
    if rows.empty:
        return "no DTR column with at least 5 values" if column else "no DTR column"
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.subplots()
    labels = [
        f"Q{b + 1}\n{lo:.2f}–{hi:.2f}"
        for b, lo, hi in rows[["bin", "lo", "hi"]].itertuples(index=False)
    ]
    bars = ax.bar(labels, rows["accuracy"], color=CORRECT, width=0.65)
    ax.bar_label(
        bars,
        labels=[f"{a:.0%}\nn={n}" for a, n in zip(rows["accuracy"], rows["n"], strict=True)],
        fontsize=8,
        padding=2,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        zorder=3,
    )
    ax.axhline(
        scored.correct.mean(),
        color="black",
        linestyle="--",
        linewidth=1,
        zorder=1.5,
        label=f"overall accuracy {scored.correct.mean():.0%}",
    )
    ax.set(
        ylim=(0, 1.15),
        ylabel="accuracy",
        xlabel=f"{column} quintile (Q1 = lowest) and its range",
        title=f"Accuracy by {column} quintile",
    )
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper left")
    return fig


def settling_histogram(scored: ScoredRun, tokens: TokenMetrics | None) -> Figure | str:
    if tokens is None or len(tokens.settling) == 0:
        return "no token_metrics.parquet with settling depths"
    if tokens.n_layers is None:
        return "scores.json records no layer count (an older scoring): score the run again"
    n_layers = tokens.n_layers
    depth = np.clip(tokens.settling, 1, n_layers)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    layers = np.arange(1, n_layers + 1)
    groups = _classes(scored)
    width = 0.8 / len(groups)
    for k, (label, traces, colour) in enumerate(groups):
        mask = np.repeat(traces, tokens.lengths())
        counts = np.bincount(depth[mask], minlength=n_layers + 1)[1:]
        ax.bar(
            layers + (k - (len(groups) - 1) / 2) * width,
            counts / max(mask.sum(), 1),
            width=width,
            color=colour,
            label=f"{label}, {mask.sum()} tokens",
        )
    deep = scored.deep_layer(n_layers)
    ax.axvline(
        deep - 0.5,
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"deep: layer ≥ {deep} (ρ={scored.dtr_params['rho']})",
    )
    ax.set(
        xlabel=f"settling depth (layer, 1–{n_layers})",
        ylabel="fraction of tokens",
        title="Where token predictions settle",
        xlim=(0.4, n_layers + 0.6),
    )
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper left")
    return fig


def jsd_by_layer(scored: ScoredRun, tokens: TokenMetrics | None) -> Figure | str:
    if tokens is None or tokens.jsd is None or len(tokens.jsd) == 0:
        return "no per-token JSD profile (score with --metrics jsd-profile)"
    has = tokens.lengths() > 0
    per_trace = tokens.trace_means()[has]
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    layers = np.arange(1, tokens.n_layers + 1)
    for label, mask, colour in _classes(scored):
        rows = per_trace[mask[has]]
        if len(rows):
            lo, hi = np.percentile(rows, [25, 75], axis=0)
            ax.fill_between(layers, lo, hi, color=colour, alpha=0.18, linewidth=0)
            ax.plot(layers, rows.mean(axis=0), color=colour, marker="o", markersize=3, label=label)
    g = scored.g_nats
    ax.axhline(g, color="black", linestyle="--", linewidth=1, label=f"settling threshold g={g:.3g}")
    ax.set(
        xlabel="layer",
        ylabel="JSD to the final layer (nats)",
        ylim=(0, math.log(2) * 1.05),
        xlim=(1, tokens.n_layers),
        title="Mean per-token JSD by layer (band: traces' IQR)",
    )
    ax.legend(loc="upper right")
    return fig


def dtr_vs_length(scored: ScoredRun) -> Figure | str:
    column = scored.dtr_column
    if column is None:
        return "no DTR column"
    dtr = scored.traces[column].astype(float).to_numpy()
    length = scored.traces["n_tokens"].astype(float).to_numpy()
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for (label, mask, colour), marker in zip(_classes(scored), ("o", "x"), strict=False):
        ax.scatter(
            length[mask], dtr[mask], s=14, alpha=0.6, color=colour, marker=marker, label=label
        )
    ok = ~np.isnan(dtr)
    rho = spearmanr(length[ok], dtr[ok]).statistic if ok.sum() > 2 else float("nan")
    ax.set(
        xlabel="length (generated tokens)",
        ylabel=column,
        title=f"{column} vs length (Spearman ρ = {rho:.2f})",
    )
    ax.legend(loc="best")
    return fig


def draw_figures(
    scored: ScoredRun,
    tokens: TokenMetrics | None,
    table: pd.DataFrame,
    quintiles: pd.DataFrame,
    out: Path,
) -> tuple[list[str], list[str]]:
    """Write every figure that can be drawn to ``out``; return (file names, skip notices)."""
    makers: dict[str, Callable[[], Figure | str]] = {
        "auroc.png": lambda: auroc_bars(scored, table),
        "accuracy_by_dtr_quintile.png": lambda: dtr_quintiles(scored, quintiles),
        "settling_depth.png": lambda: settling_histogram(scored, tokens),
        "jsd_by_layer.png": lambda: jsd_by_layer(scored, tokens),
        "dtr_vs_length.png": lambda: dtr_vs_length(scored),
    }
    written, skipped = [], []
    out.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        for name, make in makers.items():
            fig = make()
            if isinstance(fig, str):
                skipped.append(f"figure {name} skipped: {fig}")
                continue
            atomic_write(out / name, lambda tmp, f=fig: f.savefig(tmp, format="png"))
            written.append(name)
    for stale in set(p.name for p in out.glob("*.png")) - set(written):
        (out / stale).unlink()
    return written, skipped
