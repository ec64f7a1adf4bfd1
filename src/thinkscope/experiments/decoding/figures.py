"""Decoding figures (matplotlib, Agg): calibration, per-step analyses, decode sweeps."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkscope.core.atomic import atomic_write
from thinkscope.core.figures import CORRECT, NEUTRAL, STYLE, WRONG


def save(fig: Figure, path: Path, pdf: bool = False) -> Path:
    """Write ``fig`` to ``path`` (PNG) and, with ``pdf``, beside it as PDF (vector)."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    if pdf:
        atomic_write(path.with_suffix(".pdf"), lambda tmp: fig.savefig(tmp, format="pdf"))
    return path


def calibration_heatmap(summary: dict) -> Figure:
    """P(reference token at rank r | pmax bin), bins top to bottom from confident to unsure,
    and below them the unconditional row: P(rank r) over all tokens."""
    grid, overall = summary["grid"], summary.get("unconditional")
    rows = grid["prob"] + ([overall["prob"]] if overall else [])
    prob = np.array([[np.nan if v is None else v for v in row] for row in rows])
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(prob, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    for b, r in np.ndindex(prob.shape):
        if not np.isnan(prob[b, r]) and prob[b, r] >= 0.005:
            shade = "black" if prob[b, r] > 0.6 else "white"
            ax.text(r, b, f"{prob[b, r]:.2f}", ha="center", va="center", fontsize=6, color=shade)
    ax.set_xticks(range(prob.shape[1]), [str(r + 1) for r in range(prob.shape[1])])
    labels = [f"{b}  (n={n:,})" for b, n in zip(grid["bins"], grid["count"], strict=True)]
    if overall:
        labels.append(f"all  (n={overall['count']:,})")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("rank of the token in the model's distribution")
    ax.set_ylabel("top-1 probability bin (tokens)")
    ax.set_title(
        f"How often the rank-r token is the reference token: {summary['model']} on "
        f"{summary['task']} ({summary['tokens']:,} tokens)"
    )
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="P(reference token at rank r)")
    return fig


def calibration_fit(summary: dict) -> Figure:
    """The binned (p, c) points and the fitted power law, log-log."""
    p, c, n = (np.asarray(summary["fit_points"][k], dtype=float) for k in ("p", "c", "n"))
    fig = Figure(figsize=(5.6, 4.2), layout="constrained")
    ax = fig.subplots()
    shown = c > 0
    ax.scatter(p[shown], c[shown], s=12 + 30 * n[shown] / n.max(), color=CORRECT, label="bins")
    grid = np.logspace(np.log10(p[shown].min()), 0, 50)
    a, b = summary["A"], summary["B"]
    ax.plot(grid, 10**a * grid**b, color=WRONG, label=f"log10 c = {a:.3f} + {b:.3f} log10 p")
    ax.plot([grid[0], 1], [grid[0], 1], color=NEUTRAL, linestyle=":", label="c = p")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("token probability p")
    ax.set_ylabel("share that is the reference token c")
    ax.set_title("Calibration power law")
    ax.legend()
    return fig


def draw_calibration(summary: dict, out: Path, pdf: bool = False) -> list[Path]:
    with matplotlib.rc_context(STYLE):
        return [
            save(calibration_heatmap(summary), out / "calibration_heatmap.png", pdf),
            save(calibration_fit(summary), out / "calibration_fit.png", pdf),
        ]


def accuracy_bars(table: pd.DataFrame, x: str, xlabel: str, title: str) -> Figure:
    """Accuracy per row of ``table`` (columns ``x``, ``n``, ``accuracy``), n above each bar."""
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    pos = np.arange(len(table))
    ax.bar(pos, table["accuracy"].fillna(0), color=CORRECT)
    for i, (n, acc) in enumerate(zip(table["n"], table["accuracy"], strict=True)):
        ax.text(i, (0 if np.isnan(acc) else acc) + 0.01, f"n={n}", ha="center", fontsize=7)
    ax.set_xticks(pos, table[x].astype(str))
    ax.set_ylim(0, 1.08)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    return fig


def vote_bars(votes: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(4.8, 3.6), layout="constrained")
    ax = fig.subplots()
    values = [votes["maj_all"].mean(), votes["maj_confident"].mean()]
    ax.bar([0, 1], values, color=[NEUTRAL, CORRECT])
    for i, v in enumerate(values):
        ax.text(i, v + 0.01, f"{v:.3f}", ha="center")
    ax.set_xticks([0, 1], ["all samples", "confident half"])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("majority-vote accuracy")
    ax.set_title(f"Vote conditioned on confidence ({len(votes)} questions)")
    return fig


def maj_by_bin(curves: dict[int, pd.DataFrame]) -> Figure:
    """maj@k against k, one line per confidence bin (``confidence_bin_only`` runs)."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis"]
    for b, curve in sorted(curves.items()):
        ax.plot(
            curve["k"], curve["maj_at_k"], marker="o", color=cmap((b - 1) / 9), label=f"bin {b}"
        )
    ax.set_xlabel("samples voted (k)")
    ax.set_ylabel("maj@k accuracy")
    ax.set_title("Majority vote by the confidence bin that was sampled")
    ax.legend(fontsize=7, ncol=2)
    return fig


def sweep_bars(table: pd.DataFrame) -> Figure:
    """Mean sample accuracy and maj@k per decoding config, with mean tokens beside each label."""
    fig = Figure(figsize=(7.2, 1.4 + 0.45 * len(table)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(table))
    ax.barh(
        y - 0.2,
        table["mean_sample_accuracy"],
        height=0.4,
        color=CORRECT,
        label="mean sample accuracy",
    )
    ax.barh(y + 0.2, table["maj@k"], height=0.4, color=NEUTRAL, label="maj@k")
    labels = [
        f"{c} ({t:.0f} tok)" for c, t in zip(table["config"], table["mean_tokens"], strict=True)
    ]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title("Decoding configs on the same problems and seeds")
    ax.legend(loc="lower right")
    return fig
