"""``thinkscope traces`` (``generate`` with R1 defaults) and ``thinkscope dataset build``."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from pathlib import Path

import typer

from thinkscope.cli.options import field_option, option_block, spec_options
from thinkscope.cli.tables import Format, format_option, messages, print_table
from thinkscope.sft.filter_spec import DatasetFilters
from thinkscope.sft.hub import HubSpec

TRACE_DEFAULTS = {"task": "gsm8k:train", "prompt_style": "r1", "template": "plain"}

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


def test_split_warning(task: str) -> str | None:
    """One line when ``task`` is a test split (GSM8K's default split is test), else ``None``:
    training data made from it leaks into the evaluation."""
    name, _, split = task.partition(":")
    if split == "test" or (not split and name in ("gsm8k", "openai/gsm8k")):
        return (
            f"warning: --task {task} is a test split; SFT data from it leaks the evaluation "
            f"problems into training (use {name}:train)"
        )
    return None


def traces_command(generate: Callable) -> Callable:
    """``generate`` with the R1 prompt and GSM8K's training split by default: every option,
    resume and the run folder are generate's own, so options added to ``generate`` appear
    here too. A test split is warned about in one line, on stderr and in the run's log."""
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
        warning = test_split_warning(str(kwargs.get("task", "")))
        if warning:
            typer.echo(warning, err=True)
        generate(**kwargs)
        if warning:
            from thinkscope.runstore.folder import Run

            Run(kwargs["out"]).logger().warning(warning)

    traces.__signature__ = signature.replace(parameters=params)
    traces.__doc__ = (
        "Generate R1-style reasoning traces for SFT datasets: `generate` with the prompt "
        "'A conversation between User and Assistant ... <think>' (answers as "
        "'</think> <answer>X</answer>'), from GSM8K's training split by default."
    )
    return traces


filter_options = option_block(
    {name: field_option(DatasetFilters, name) for name in DatasetFilters.model_fields},
    "filters",
    "Filters",
)


@dataset_app.command("build")
@format_option
@export_options
@spec_options(HubSpec, "hub", "Hub")
@filter_options
def build_command(
    ctx: typer.Context,
    run_dir: Path = typer.Argument(
        None, help="Run folder from `thinkscope traces` or `generate` (or give --from-hub)."
    ),
    out: Path = typer.Option(..., help="Dataset folder to create (or to resume)."),
    shard_rows: int = typer.Option(512, min=1, help="Traces graded per checkpoint."),
    resume: bool = typer.Option(False, help="Continue a killed build in --out."),
    export: dict | None = None,
    hub: HubSpec = HubSpec(),
    filters: dict | None = None,
    fmt: Format = Format.table,
) -> None:
    """Grade a run's traces again, filter them, and write SFT JSONL files with a card. With
    --preset, a filter option given on the command line overrides the preset's value."""
    from thinkscope.core.errors import UserError
    from thinkscope.sft import build_dataset
    from thinkscope.sft.builder import check_out
    from thinkscope.sft.hub import fetch_run

    given = {k: v for k, v in filters.items() if ctx.get_parameter_source(k).name != "DEFAULT"}
    filters = DatasetFilters.parse(**given)
    if (run_dir is None) == (hub.from_hub is None):
        raise UserError("give a run folder or --from-hub REPO (one of them)")
    hub.check()
    if hub.from_hub is not None:
        check_out(out, resume)
        run_dir = fetch_run(hub.from_hub)
    if filters.dtr_column != "dtr" or filters.needs_dtr:
        _check_dtr_column(run_dir, filters.dtr_column)
    result = build_dataset(
        run_dir,
        out,
        filters,
        resume=resume,
        push_to_hub=hub.push_to_hub,
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
