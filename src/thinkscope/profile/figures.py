"""The card's shared figure: a histogram of one value per sample, correct against wrong."""

from __future__ import annotations

import numpy as np

from thinkscope.profile.section import Context, FigureRef


def by_correctness(
    ctx: Context, values, correct, bins, xlabel: str, title: str, name: str, caption: str
) -> FigureRef:
    """Histograms of ``values`` (NaN left out) for the correct and the wrong samples, each
    drawn only when that class has samples."""
    import matplotlib.pyplot as plt

    values, correct = np.asarray(values, np.float64), np.asarray(correct, bool)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, mask, color in (("correct", correct, "tab:green"), ("wrong", ~correct, "tab:red")):
        kept = values[mask & ~np.isnan(values)]
        if len(kept):
            ax.hist(kept, bins=bins, alpha=0.6, color=color, label=f"{label} ({len(kept)})")
    ax.set(xlabel=xlabel, ylabel="samples", title=title)
    ax.legend()
    fig.tight_layout()
    return ctx.figure(fig, name, caption)
