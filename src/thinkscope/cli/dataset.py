"""``thinkscope traces`` (``generate`` with R1 defaults) and ``thinkscope dataset build``."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from pathlib import Path

import typer

from thinkscope.cli.options import option_block

TRACE_DEFAULTS = {"prompt_style": "r1", "template": "plain"}

export_options = option_block(
    {"format": (str, "prompt-response", "prompt-response or messages (TRL chat).")}, "export"
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
@export_options
def build_command(
    run_dir: Path = typer.Argument(..., help="Run folder from `thinkscope traces` or `generate`."),
    out: Path = typer.Option(..., help="Dataset folder to create (or to resume)."),
    require_correct: bool = typer.Option(False, help="Keep only traces the grader marks right."),
    require_answer_tag: bool = typer.Option(
        False, help="Keep only responses with an <answer> tag or \\boxed{}."
    ),
    exclude_truncated: bool = typer.Option(False, help="Drop traces cut at --max-new-tokens."),
    min_dtr: float = typer.Option(None, help="Keep traces with DTR >= X (needs a scored run)."),
    fallback_best_correct: bool = typer.Option(
        False, help="A question with no trace at --min-dtr keeps its best correct one."
    ),
    keep_per_question: int = typer.Option(
        None, help="Keep the K best traces per question (by DTR, then log-probability)."
    ),
    min_tokens: int = typer.Option(None, help="Drop responses shorter than this (tokens)."),
    max_tokens: int = typer.Option(None, help="Drop responses longer than this (tokens)."),
    dedupe: bool = typer.Option(False, help="Drop repeated identical responses to a prompt."),
    dtr_column: str = typer.Option("dtr", help="Which DTR column of a scored run to use."),
    push_to_hub: str = typer.Option(None, help="Also push the export to this Hub repo."),
    shard_rows: int = typer.Option(512, min=1, help="Traces graded per checkpoint."),
    resume: bool = typer.Option(False, help="Continue a killed build in --out."),
    export: dict | None = None,
) -> None:
    """Grade a run's traces again, filter them, and write SFT JSONL files with a card."""
    from rich.console import Console
    from rich.table import Table

    from thinkscope.sft import DatasetFilters, build_dataset

    filters = DatasetFilters.parse(
        require_correct=require_correct,
        require_answer_tag=require_answer_tag,
        exclude_truncated=exclude_truncated,
        min_dtr=min_dtr,
        fallback_best_correct=fallback_best_correct,
        keep_per_question=keep_per_question,
        min_tokens=min_tokens,
        max_tokens=max_tokens,
        dedupe=dedupe,
        dtr_column=dtr_column,
    )
    result = build_dataset(
        run_dir,
        out,
        filters,
        resume=resume,
        push_to_hub=push_to_hub,
        shard_rows=shard_rows,
        **(export or {}),
    )
    table = Table("filter", "before", "kept", "dropped", "restored")
    for step in result.steps:
        row = (step.before, step.kept, step.dropped, step.restored)
        table.add_row(step.flag, *map(str, row))
    console = Console()
    console.print(table)
    console.print(
        f"sft_all: {result.n_all} rows (accuracy {result.accuracy:.3f}), "
        f"sft_correct: {result.n_correct} rows; card: {result.card}"
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
