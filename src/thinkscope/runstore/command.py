"""``thinkscope runs reproduce``: the Typer layer over :func:`thinkscope.runstore.reproduce`."""

from __future__ import annotations

from pathlib import Path

import typer


def reproduce_command(
    run: str = typer.Argument(..., help="Run folder, or its id from `thinkscope runs list`."),
    out: Path = typer.Option(..., help="New folder for the reproduction."),
) -> None:
    """Re-run a run from its recorded config (and scoring) and diff samples and metrics."""
    from rich.console import Console
    from rich.table import Table

    from thinkscope.runstore.registry import find_run
    from thinkscope.runstore.reproduce import reproduce

    path = Path(run) if Path(run).is_dir() else Path(find_run(run)["path"])
    result = reproduce(path, out)
    samples, console = result.report["samples"], Console()
    table = Table("what", "compared", "differing")
    for column, count in samples["differing"].items():
        table.add_row(column, str(samples["n"]), str(count))
    for column, entry in result.report["metrics"].items():
        table.add_row(column, f"max |diff| {entry['max_abs_diff']:.3g}", str(entry["differing"]))
    console.print(table)
    verdict = "identical" if result.identical else "DIFFERENT"
    console.print(f"{verdict}: {result.reproduction / 'reproduce.json'}")
