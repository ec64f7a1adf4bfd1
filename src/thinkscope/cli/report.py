"""The Typer command ``thinkscope report DIR`` (a thin layer over :func:`build_report`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape


def report_command(
    run_dir: Path = typer.Argument(..., metavar="DIR", help="A scored run folder."),
    out: Path | None = typer.Option(
        None, help="Where to write the page (default: DIR/report.html)."
    ),
    max_traces: int = typer.Option(2000, min=1, help="Most traces in the trace viewer."),
) -> None:
    """One self-contained HTML page: run summary, metric table, figures and a trace viewer."""
    from thinkscope.analysis.report import build_report

    console = Console()
    report = build_report(run_dir, out, max_traces)
    if report.reanalysed:
        console.print(
            "analysis was missing or older than the scores: ran `thinkscope analyze`",
            soft_wrap=True,
        )
    for notice in report.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}", soft_wrap=True)
    console.print(
        f"wrote {report.path} ({report.n_traces} traces in the viewer, "
        f"{report.path.stat().st_size / 1e6:.1f} MB)",
        soft_wrap=True,
    )
