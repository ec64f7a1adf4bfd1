"""``thinkscope traces`` (``generate`` with R1 defaults) and ``thinkscope dataset build``."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from pathlib import Path

import typer

from thinkscope.cli.options import option_block, spec_options
from thinkscope.cli.tables import Format, format_option, messages, print_table
from thinkscope.sft.filter_spec import DatasetFilters

TRACE_DEFAULTS = {"prompt_style": "r1", "template": "plain"}

export_options = option_block(
    {
        "dataset_format": (
            str,
            "prompt-response",
            "Dataset records: prompt-response, or messages (TRL chat).",
        )
    },
    "export",
    build=lambda dataset_format: {"format": dataset_format},
)
dataset_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="SFT datasets from traces."
)


def traces_command(generate: Callable) -> Callable:
    """``generate`` with the R1 prompt by default: every option, resume and the run folder are
    generate's own, so options added to ``generate`` appear here too."""
    signature = inspect.signature(generate)
    params = []
    for param in signature.parameters.values():
        if param.name in TRACE_DEFAULTS:
            option = copy.copy(param.default)
            option.default = TRACE_DEFAULTS[param.name]
            param = param.replace(default=option)
        params.append(param)

    @functools.wraps(generate)
    def traces(**kwargs) -> None:
        generate(**kwargs)

    traces.__signature__ = signature.replace(parameters=params)
    traces.__doc__ = (
        "Generate R1-style reasoning traces for SFT datasets: `generate` with the prompt "
        "'A conversation between User and Assistant ... <think>' (answers as "
        "'</think> <answer>X</answer>')."
    )
    return traces


@dataset_app.command("build")
@format_option
@export_options
@spec_options(DatasetFilters, "filters", "Filters")
def build_command(
    run_dir: Path = typer.Argument(..., help="Run folder from `thinkscope traces` or `generate`."),
    out: Path = typer.Option(..., help="Dataset folder to create (or to resume)."),
    push_to_hub: str = typer.Option(None, help="Also push the export to this Hub repo."),
    shard_rows: int = typer.Option(512, min=1, help="Traces graded per checkpoint."),
    resume: bool = typer.Option(False, help="Continue a killed build in --out."),
    export: dict | None = None,
    filters: DatasetFilters | None = None,
    fmt: Format = Format.table,
) -> None:
    """Grade a run's traces again, filter them, and write SFT JSONL files with a card."""

    from thinkscope.sft import build_dataset

    if filters.dtr_column != "dtr" or filters.needs_dtr:
        _check_dtr_column(run_dir, filters.dtr_column)
    result = build_dataset(
        run_dir,
        out,
        filters,
        resume=resume,
        push_to_hub=push_to_hub,
        shard_rows=shard_rows,
        **(export or {}),
    )
    rows = [
        {
            "filter": step.flag,
            "before": step.before,
            "kept": step.kept,
            "dropped": step.dropped,
            "restored": step.restored,
        }
        for step in result.steps
    ]
    print_table(rows, fmt)
    messages(fmt).print(
        f"sft_all: {result.n_all} rows (accuracy {result.accuracy:.3f}), "
        f"sft_correct: {result.n_correct} rows; card: {result.card}",
        soft_wrap=True,
    )


def _check_dtr_column(run_dir: Path, column: str) -> None:
    """Refuse a ``--dtr-column`` that a scored run does not have, naming the ones it has."""
    from thinkscope.analysis.load import load_scored
    from thinkscope.core.errors import UserError

    if not (run_dir / "scores.json").is_file():
        return  # not scored: the build says to score it
    columns = load_scored(run_dir).columns
    if column not in columns:
        raise UserError(
            f"--dtr-column {column!r} is not a column of {run_dir}; its metric columns: "
            f"{', '.join(columns)}"
        )


@dataset_app.command("reference")
@export_options
def reference_command(
    out: Path = typer.Option(..., help="Dataset folder to create."),
    task: str = typer.Option("gsm8k:train", help="A task whose problems carry worked solutions."),
    questions: int = typer.Option(None, help="How many problems (default: all)."),
    export: dict | None = None,
) -> None:
    """SFT files from a task's reference solutions, in the same R1 form as traces."""
    from rich.console import Console

    from thinkscope.sft import reference_dataset

    result = reference_dataset(task, out, questions, **(export or {}))
    Console().print(f"sft_correct: {result.n_correct} rows of {result.n_all}; card: {result.card}")


def _traces() -> Callable:
    from thinkscope.cli.generate import generate

    return traces_command(generate)


traces = _traces()
