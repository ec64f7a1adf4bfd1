"""The dataset card: ``README.md`` beside the files, with length and DTR histograms (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkscope.core.atomic import atomic_write, write_text
from thinkscope.core.figures import CORRECT, NEUTRAL, STYLE, WRONG
from thinkscope.sft.filters import FilterStep


def _histogram(
    graded: pd.DataFrame, kept: pd.DataFrame, column: str, label: str, line: float | None
) -> Figure:
    """All graded traces by correctness, and the kept ones outlined, over ``column``."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    values = graded[column].dropna().to_numpy(dtype=float)
    bins = np.histogram_bin_edges(values if len(values) else [0, 1], bins=20)
    for name, mask, colour in (
        ("correct", graded["is_correct"], CORRECT),
        ("wrong", ~graded["is_correct"], WRONG),
    ):
        part = graded.loc[mask.to_numpy(dtype=bool), column].dropna()
        if len(part):
            ax.hist(part, bins=bins, alpha=0.55, color=colour, label=f"{name} ({len(part)})")
    ax.hist(
        kept[column].dropna(),
        bins=bins,
        histtype="step",
        color="black",
        linewidth=1.4,
        label=f"kept ({len(kept)})",
    )
    if line is not None:
        ax.axvline(line, color=NEUTRAL, linestyle="--", label=f"threshold {line:g}")
    ax.set_xlabel(label)
    ax.set_ylabel("traces")
    ax.set_title(f"{label}: all traces and the kept ones")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw(
    out: Path, graded: pd.DataFrame, kept: pd.DataFrame, dtr: str | None, min_dtr: float | None
) -> list[str]:
    """Write ``length_hist.png`` (and ``dtr_hist.png`` when scored) to ``out``."""
    figures = {}
    if "n_tokens" in graded and graded["n_tokens"].notna().any():
        figures["length_hist.png"] = ("n_tokens", "completion tokens", None)
    if dtr:
        figures["dtr_hist.png"] = (dtr, "DTR", min_dtr)
    with matplotlib.rc_context(STYLE):
        for name, (column, label, line) in figures.items():
            fig = _histogram(graded, kept, column, label, line)
            atomic_write(out / name, lambda tmp, f=fig: f.savefig(tmp, format="png"))
    return list(figures)


def _mean(frame: pd.DataFrame, column: str | None) -> str:
    if not column or column not in frame or frame[column].notna().sum() == 0:
        return "-"
    return f"{frame[column].mean():.4g}"


def card_text(
    source: dict,
    filters: dict,
    truncation: dict,
    steps: list[FilterStep],
    graded: pd.DataFrame,
    kept: pd.DataFrame,
    files: dict[str, int],
    figures: list[str],
    dtr: str | None,
) -> str:
    """The card's markdown: source, truncated-trace policy, filters, per-filter counts,
    accuracy, lengths, figures."""
    lines = ["# thinkscope SFT dataset", "", "## Source", ""]
    lines += [f"- {key}: `{value}`" for key, value in source.items()]
    lines += ["", "## Truncated traces", "", _truncation_text(truncation)]
    lines += ["", "## Filters", ""]
    active = [f"- `{k}`: `{v}`" for k, v in filters.items()]
    lines += active or ["- none besides the truncated-trace policy"]
    lines += ["", "| filter | before | kept | dropped | restored |"]
    lines += ["| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| `{s.flag}` | {s.before} | {s.kept} | {s.dropped} | {s.restored} |" for s in steps]
    if not steps:
        lines.append(f"| (none) | {len(graded)} | {len(graded)} | 0 | 0 |")
    lines += ["", "## Contents", "", "| | traces | accuracy | mean tokens | mean DTR |"]
    lines += ["| --- | ---: | ---: | ---: | ---: |"]
    for name, frame in (("all graded traces", graded), ("kept", kept)):
        accuracy = f"{frame['is_correct'].mean():.4f}" if len(frame) else "-"
        lines.append(
            f"| {name} | {len(frame)} | {accuracy} | {_mean(frame, 'n_tokens')} | "
            f"{_mean(frame, dtr)} |"
        )
    lines += ["", "Files:", ""]
    lines += [f"- `{name}`: {count} rows" for name, count in files.items()]
    lines += ["", *[f"![{name}]({name})" for name in figures]]
    return "\n".join(lines) + "\n"


def _truncation_text(truncation: dict) -> str:
    cut = "Traces cut at `--max-new-tokens` (finish reason `length`)"
    if truncation["policy"] == "keep":
        return (
            f"{cut}: policy `keep`, {truncation['kept']} kept, marked `truncated: true`; "
            "training appends no end-of-sequence token to them."
        )
    return f"{cut}: policy `exclude`, {truncation['excluded']} excluded."


def write_card(out: Path, text: str) -> None:
    write_text(out / "README.md", text)
