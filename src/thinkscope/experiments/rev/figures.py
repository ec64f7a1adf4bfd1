"""The three figures of the REV evaluation (seed 001's Fig. 1-3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def draw_scaling(runs: pd.DataFrame, path: Path) -> Path:
    """delta-AUC (+REV over length and perplexity) against log10(model parameters)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    by_model = runs.groupby("params")["delta_auc"].agg(["mean", "min", "max"]).sort_index()
    x = np.log10(by_model.index.to_numpy(float))
    ax.plot(x, by_model["mean"], "o-", color="C0", label="+REV")
    ax.vlines(x, by_model["min"], by_model["max"], color="C0", alpha=0.5)
    by_dtr = runs.groupby("params")["delta_auc_dtr"].mean().sort_index()
    ax.plot(x, by_dtr.to_numpy(), "s--", color="C1", label="+REV+DTR")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="log10(parameters)", ylabel="delta-AUC over (length, perplexity)", title="Scaling"
    )
    ax.legend()
    return _save(fig, path)


def draw_temperature(runs: pd.DataFrame, path: Path) -> Path:
    """AUROC of REV, DTR and the baseline model against sampling temperature, per model."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k, (model, group) in enumerate(runs.groupby("model")):
        group = group.sort_values("temperature")
        for column, style, label in (
            ("rev_auroc", "o-", "REV"),
            ("dtr_auroc", "s--", "DTR"),
            ("base_cv_auroc", "^:", "length+ppl (CV)"),
        ):
            ax.plot(
                group["temperature"],
                group[column],
                style,
                color=f"C{k}",
                label=f"{label} ({model})",
            )
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(xlabel="temperature", ylabel="AUROC for correctness", title="Temperature robustness")
    ax.legend(fontsize=7)
    return _save(fig, path)


def draw_ablation(curve: pd.DataFrame, path: Path) -> Path:
    """Change in greedy accuracy against the share of heads zeroed (top-ranked first)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(100 * curve["share"], curve["delta_accuracy"], "o-")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(
        xlabel="% heads removed (by arithmetic logit shift)",
        ylabel="delta accuracy",
        title="Head-ablation curve",
    )
    return _save(fig, path)
