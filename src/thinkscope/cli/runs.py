"""``thinkscope runs list | show | diff | reproduce``: the run registry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from thinkscope.cli.loading import model_overrides

runs_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="List, show, compare and reproduce registered runs.",
)
console = Console()


@runs_app.command("list")
def runs_list() -> None:
    """Every registered run."""
    from thinkscope.runstore.registry import list_runs

    table = Table("id", "kind", "created", "status", "model", "task", "accuracy")
    table.add_column("path", overflow="fold")
    for run in list_runs():
        cfg, summ = run["config"], run["summary"]
        table.add_row(
            str(run["id"]),
            run["kind"],
            run["created"],
            run["status"],
            str(cfg.get("model")),
            str(cfg.get("task")),
            str(summ.get("accuracy")),
            run["path"],
        )
    console.print(table)


@runs_app.command("show")
def runs_show(ref: str = typer.Argument(..., help="Run id (from `runs list`) or folder.")) -> None:
    """A run's config and summary."""
    from thinkscope.runstore.registry import find_run

    run = find_run(ref)
    table = Table("key", "value")
    for section in ("config", "summary"):
        for key, value in run[section].items():
            table.add_row(f"{section}.{key}", str(value))
    console.print(f"[bold]{run['path']}[/] ({run['kind']}, {run['status']}, {run['created']})")
    console.print(table)


@runs_app.command("diff")
def runs_diff(a: str, b: str) -> None:
    """Where two runs' configs and summaries differ; the model, its dtype and weights always."""
    from thinkscope.runstore.registry import diff, find_run

    run_a, run_b = find_run(a), find_run(b)
    table = Table("key", a, b)
    for key, value_a, value_b in diff(run_a, run_b):
        table.add_row(key, str(value_a), str(value_b))
    console.print(table)


@runs_app.command("reproduce")
@model_overrides
def reproduce_command(
    run: str = typer.Argument(..., help="Run folder, or its id from `thinkscope runs list`."),
    out: Path = typer.Option(..., help="New folder for the reproduction."),
    model_overrides: dict | None = None,
) -> None:
    """Re-run a run from its recorded config (and scoring) and diff samples and metrics: the
    same model, dtype and weights (refused if the weights changed) unless an option says
    otherwise."""
    from rich.console import Console
    from rich.table import Table

    from thinkscope.experiments.reproduce import reproduce
    from thinkscope.runstore.registry import find_run

    path = Path(run) if Path(run).is_dir() else Path(find_run(run)["path"])
    result = reproduce(path, out, **(model_overrides or {}))
    samples, console = result.report["samples"], Console()
    table = Table("what", "compared", "differing")
    for column, count in samples["differing"].items():
        table.add_row(column, str(samples["n"]), str(count))
    for column, entry in result.report["metrics"].items():
        table.add_row(column, f"max |diff| {entry['max_abs_diff']:.3g}", str(entry["differing"]))
    console.print(table)
    verdict = "identical" if result.identical else "DIFFERENT"
    console.print(f"{verdict}: {result.reproduction / 'reproduce.json'}")
