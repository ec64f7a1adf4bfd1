"""``thinkscope runs list | show | diff | export | best | reproduce``: the run registry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from thinkscope.cli.loading import model_overrides
from thinkscope.cli.tables import Col, Format, format_option, messages, print_table

runs_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="List, show, compare and reproduce registered runs.",
)

#: ``runs list`` as a person reads it: paths shortened from the left; at 80 columns the
#: task, the creation time and the status go first.
LIST_COLUMNS = (
    Col("id"),
    Col("kind", role="name"),
    Col("created", show=lambda t: t[:16].replace("T", " "), role="name", drop=2),
    Col("status", role="name", drop=1),
    Col("model", role="path"),
    Col("task", role="path", drop=3),
    Col("accuracy", show=".3f"),
    Col("path", role="path"),
)


@runs_app.command("list")
@format_option
def runs_list(fmt: Format = Format.table) -> None:
    """Every registered run."""
    from thinkscope.runstore.registry import list_runs

    rows = [
        {
            "id": run["id"],
            "kind": run["kind"],
            "created": run["created"],
            "status": run["status"],
            "model": run["config"].get("model"),
            "task": run["config"].get("task"),
            "accuracy": run["summary"].get("accuracy"),
            "path": run["path"],
        }
        for run in list_runs()
    ]
    print_table(rows, fmt, LIST_COLUMNS)


@runs_app.command("show")
@format_option
def runs_show(
    ref: str = typer.Argument(..., help="Run id (from `runs list`) or folder."),
    fmt: Format = Format.table,
) -> None:
    """A run's config and summary."""
    from thinkscope.runstore.registry import find_run

    run = find_run(ref)
    rows = [
        {"key": f"{section}.{key}", "value": value}
        for section in ("config", "summary")
        for key, value in run[section].items()
    ]
    console = messages(fmt)
    console.print(
        f"[bold]{escape(run['path'])}[/] ({run['kind']}, {run['status']}, {run['created']})"
    )
    print_table(rows, fmt, (Col("key", role="name"), Col("value", show=str, role="text")))


@runs_app.command("diff")
@format_option
def runs_diff(a: str, b: str, fmt: Format = Format.table) -> None:
    """Where two runs' configs and summaries differ; the model, its dtype and weights always."""
    from thinkscope.runstore.registry import diff, find_run

    rows = [
        {"key": key, "a": value_a, "b": value_b}
        for key, value_a, value_b in diff(find_run(a), find_run(b))
    ]
    columns = (
        Col("key", role="name"),
        Col("a", a, show=str, role="text"),
        Col("b", b, show=str, role="text"),
    )
    print_table(rows, fmt, columns)


@runs_app.command("export")
def runs_export(
    csv: Path = typer.Option(..., "--csv", help="CSV file to write (the whole registry)."),
) -> None:
    """Every registered run as one CSV row: id, path, kind, created, status, then each
    config.KEY and summary.KEY the registry holds."""
    import csv as csv_module

    from thinkscope.core.atomic import atomic_write
    from thinkscope.runstore.registry import flat_runs

    columns, rows = flat_runs()

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv_module.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(csv, write)
    messages(Format.table).print(f"{len(rows)} runs, {len(columns)} columns: {escape(str(csv))}")


@runs_app.command("best")
@format_option
def runs_best(
    by: str = typer.Option(
        ..., help="Registry column to maximise: summary.KEY, config.KEY, or a bare KEY."
    ),
    fmt: Format = Format.table,
) -> None:
    """The registered run (an iteration, an experiment) with the highest value of --by."""
    from thinkscope.runstore.registry import best_run

    column, run = best_run(by)
    rows = [{"key": k, "value": run[k]} for k in ("id", "path", "kind", "created", column)]
    print_table(rows, fmt, (Col("key", role="name"), Col("value", show=str, role="text")))


@runs_app.command("reproduce")
@format_option
@model_overrides
def reproduce_command(
    run: str = typer.Argument(..., help="Run folder, or its id from `thinkscope runs list`."),
    out: Path = typer.Option(..., help="New folder for the reproduction."),
    model_overrides: dict | None = None,
    fmt: Format = Format.table,
) -> None:
    """Re-run a run and compare: a generate run from its recorded config (and scoring), diffing
    samples and metrics; any other kind by rerunning the command its header records into OUT,
    diffing the data files. The same model, dtype and weights (refused if the weights changed)
    unless an option says otherwise."""
    from thinkscope.cli.rerun import rerun
    from thinkscope.experiments.reproduce import reproduce
    from thinkscope.runstore.header import HEADER, read_header
    from thinkscope.runstore.registry import find_run

    path = Path(run) if Path(run).is_dir() else Path(find_run(run)["path"])
    header = read_header(path) if (path / HEADER).is_file() else {"kind": "generate"}
    overrides = model_overrides or {}
    if header["kind"] == "generate":
        report = reproduce(path, out, **overrides).report
        samples = report["samples"]
        rows = [
            {"what": column, "compared": samples["n"], "differing": count}
            for column, count in samples["differing"].items()
        ] + [
            {"what": column, "max_abs_diff": entry["max_abs_diff"], "differing": entry["differing"]}
            for column, entry in report["metrics"].items()
        ]
        columns = (
            Col("what", role="name"),
            Col("compared"),
            Col("max_abs_diff", "max |diff|", show=".3g"),
            Col("differing"),
        )
    else:
        report = rerun(path, header, out, overrides)
        rows = [{"file": name, **entry} for name, entry in report["files"].items()]
        columns = (
            Col("file", role="path"),
            Col("status", role="name"),
            Col("differing"),
            Col("max_abs_diff", "max |diff|", show=".3g"),
        )
    print_table(rows, fmt, columns)
    verdict = "identical" if report["identical"] else "DIFFERENT"
    messages(fmt).print(f"{verdict}: {escape(str(out / 'reproduce.json'))}")
