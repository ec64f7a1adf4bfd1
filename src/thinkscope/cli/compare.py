"""The Typer command ``thinkscope compare BASE TUNED``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from thinkscope.cli.loading import PANEL, model_options
from thinkscope.cli.options import spec_options
from thinkscope.cli.tables import Format, format_option, messages, print_table
from thinkscope.experiments.sft_filtering import SftFilteringConfig
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import LoadingSpec, ModelSpec
from thinkscope.tasks.spec import TaskSpec

#: compare's own defaults: the prompt the training data was made with (``traces``: r1, plain).
OWN_DEFAULTS = {"prompt_style": "r1", "template": "plain"}


@format_option
@spec_options(LoadingSpec, "loading", PANEL)
@spec_options(SamplingSpec, "sampling", "Sampling")
@spec_options(TaskSpec, "task_spec", "Task", defaults=OWN_DEFAULTS)
def compare_command(
    base: str = typer.Argument(..., help="Base model (bundled name, directory or hub id)."),
    tuned: str = typer.Argument(..., help="Tuned model: a directory or a `train` folder."),
    out: Path = typer.Option(..., help="Result folder (rerun to resume)."),
    batch_size: int = typer.Option(64, help="Sequences decoded at once."),
    metrics: str = typer.Option("dtr,confidence", help="Metrics scored on both runs."),
    sampling: SamplingSpec | None = None,
    task_spec: TaskSpec | None = None,
    loading: LoadingSpec | None = None,
    fmt: Format = Format.table,
) -> None:
    """Base versus tuned on the same problems and seeds: mean sample accuracy, pass@k (k up to --n),
    length, DTR, confidence, per-question wins and McNemar's test on paired greedy correctness.
    The model options load both. The prompt defaults to the one `traces` makes training data
    with (r1, plain)."""
    from thinkscope.experiments.compare.core import CompareConfig, compare_models

    config = CompareConfig.parse(
        base=base,
        tuned=tuned,
        batch_size=batch_size,
        metrics=metrics,
        **loading.model_dump(),
        **task_spec.model_dump(),
        **sampling.model_dump(),
    )
    result = compare_models(config, out)
    print_table(result.summary, fmt)
    console = messages(fmt)
    test = result.mcnemar
    console.print(
        f"greedy: both {test.both}, base only {test.base_only}, tuned only {test.tuned_only}, "
        f"neither {test.neither}; McNemar p = {test.pvalue:.3g}"
    )
    console.print(f"report: {escape(str(result.path / 'report.html'))}")
    tuned = escape(str(result.path / "runs" / "tuned"))
    console.print(f"also a section of the tuned run's report: thinkscope report {tuned}")


@format_option
@model_options
@spec_options(SamplingSpec, "sampling", "Sampling")
@spec_options(
    SftFilteringConfig,
    "arms",
    "Arms, training and evaluation",
    exclude=(*ModelSpec.model_fields, *SamplingSpec.model_fields),
)
def sft_filtering_command(
    out: Path = typer.Option(..., help="Result folder (rerun to resume)."),
    arms: SftFilteringConfig | None = None,
    sampling: SamplingSpec | None = None,
    model_spec: ModelSpec | None = None,
    fmt: Format = Format.table,
) -> None:
    """Seed 004: reference vs correct vs all traces vs DTR-filtered, one adapter each, one table;
    traces from --teacher, expert iteration over --rounds, nested --sizes, --full fine-tuning."""
    from thinkscope.experiments.sft_filtering import run_sft_filtering

    config = SftFilteringConfig.parse(
        **{**arms.model_dump(), **model_spec.model_dump(), **sampling.model_dump()}
    )
    table = run_sft_filtering(config, out)
    print_table(table, fmt)
    messages(fmt).print(f"results: {escape(str(out / 'results.csv'))}")
