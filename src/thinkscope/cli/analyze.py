"""The Typer command ``thinkscope analyze DIR`` (a thin layer over :func:`analyze_run`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from thinkscope.cli.tables import Format, format_option, messages, print_table


@format_option
def analyze_command(
    run_dir: Path = typer.Argument(..., metavar="DIR", help="A scored run folder."),
    resamples: int = typer.Option(10_000, min=0, help="Bootstrap resamples for the AUROC CI."),
    seed: int = typer.Option(0, help="Seed of the bootstrap and the quintile tie-breaks."),
    seeds: int = typer.Option(30, min=1, help="Seeds averaged by the binned correlation."),
    samples_per_question: int | None = typer.Option(
        None, min=5, help="Samples drawn per question for the binned correlation (default: all)."
    ),
    fmt: Format = Format.table,
) -> None:
    """AUROC, binned and partial correlations of every metric, and figures, into DIR/analysis."""
    from thinkscope.analysis.console import metric_rich_table
    from thinkscope.analysis.run import analyze_run

    console = messages(fmt)
    result = analyze_run(run_dir, resamples, seed, seeds, samples_per_question)
    if fmt is Format.table:
        console.print(metric_rich_table(result.metrics, console.width))
    else:
        print_table(result.metrics, fmt)
    for notice in result.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}", soft_wrap=True)
    console.print(
        f"wrote {result.path}: metrics.csv, metrics.json, quintiles.csv, "
        f"{len(result.figures)} figures",
        soft_wrap=True,
    )
