"""The Typer command ``thinkscope analyze DIR`` (a thin layer over :func:`analyze_run`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thinkscope.analyze.run import analyze_run


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number for a table cell; NaN is an em dash."""
    if value is None or math.isnan(value):
        return "—"
    return format(value, spec)


def metric_rich_table(metrics: pd.DataFrame) -> Table:
    """The table as printed (80 columns; NaN counts are printed as notes below it)."""
    table = Table(
        title="How well each metric predicts correctness",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption="r bin: binned r; r part: partial r (length, ppl)",
    )
    table.add_column("metric", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("AUROC [95% CI]", no_wrap=True)
    for name in ("r bin", "r part", "p", "DeLong"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in metrics.itertuples():
        defined = not math.isnan(row.auroc)
        ci = f" [{fmt(row.auroc_lo, '.2f')},{fmt(row.auroc_hi, '.2f')}]" if defined else ""
        table.add_row(
            escape(row.metric),
            str(row.n),
            fmt(row.auroc) + ci,
            fmt(row.r_binned),
            fmt(row.partial_r),
            fmt(row.partial_p, ".2g"),
            fmt(row.delong_p_vs_dtr, ".2g"),
        )
    return table


def analyze_command(
    run_dir: Path = typer.Argument(..., metavar="DIR", help="A scored run folder."),
    resamples: int = typer.Option(10_000, min=0, help="Bootstrap resamples for the AUROC CI."),
    seed: int = typer.Option(0, help="Seed of the bootstrap and the quintile tie-breaks."),
    seeds: int = typer.Option(30, min=1, help="Seeds averaged by the binned correlation."),
    samples_per_question: int | None = typer.Option(
        None, min=5, help="Samples drawn per question for the binned correlation (default: all)."
    ),
) -> None:
    """AUROC, binned and partial correlations of every metric, and figures, into DIR/analysis."""
    console = Console()
    result = analyze_run(run_dir, resamples, seed, seeds, samples_per_question)
    console.print(metric_rich_table(result.metrics))
    for notice in result.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}", soft_wrap=True)
    console.print(
        f"wrote {result.path}: metrics.csv, metrics.json, quintiles.csv, "
        f"{len(result.figures)} figures",
        soft_wrap=True,
    )
