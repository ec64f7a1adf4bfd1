"""Accuracy versus relative token cost, one point per method (matplotlib, Agg)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from thinkscope.core.atomic import atomic_write  # noqa: E402


def plot_selection(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """Write a PNG of ``accuracy`` (error bar: ``accuracy_std``, where there are repeats)
    against ``relative_cost``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for row, marker in zip(table.itertuples(), "osD^vP*X", strict=False):
        ax.errorbar(
            row.relative_cost,
            row.accuracy,
            yerr=None if pd.isna(row.accuracy_std) else row.accuracy_std,
            fmt=marker,
            capsize=3,
            alpha=0.85,
            label=f"{row.method} ({row.relative_cost:.2f})",
        )
    ax.set_xlabel("generated tokens relative to Cons@n")
    ax.set_ylabel("accuracy (± std over repeats)")
    ax.set_xlim(0, max(1.05, float(table["relative_cost"].max()) + 0.05))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
