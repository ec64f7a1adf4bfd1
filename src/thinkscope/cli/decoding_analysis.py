"""``thinkscope calibrate``, ``decoding-report`` and ``decode-sweep``: thin Typer layers."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from thinkscope.cli.loading import model_options
from thinkscope.cli.options import spec_options
from thinkscope.cli.tables import (
    Format,
    format_option,
    infer_columns,
    messages,
    print_mapping,
    print_table,
    print_tables,
)
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import ModelSpec
from thinkscope.tasks.spec import TaskSpec


class FigureFormat(str, Enum):
    png = "png"
    pdf = "pdf"


#: ``--figure-format``, not ``--format``: on these commands ``--format`` picks the table format.
FIGURE_FORMAT = typer.Option(
    FigureFormat.png,
    "--figure-format",
    help="pdf: write each figure as PDF too, beside its PNG (the PNG stays for the report).",
)


@format_option
@model_options
@spec_options(TaskSpec, "task_spec", "Task", defaults={"task": "gsm8k:train", "questions": 200})
def calibrate_command(
    out: Path = typer.Option(..., help="Folder for calibration.json, the grid and figures."),
    top_k: int = typer.Option(20, help="Ranks recorded per position."),
    reference_field: str = typer.Option(None, help="JSONL field with the reference response."),
    batch_size: int = typer.Option(4, help="Solutions per forward pass."),
    resume: bool = typer.Option(False, help="Continue a killed calibration in --out."),
    figure_format: FigureFormat = FIGURE_FORMAT,
    task_spec: TaskSpec | None = None,
    model_spec: ModelSpec | None = None,
    fmt: Format = Format.table,
) -> None:
    """Teacher-force reference solutions: rank calibration grid and power-law fit. The task
    defaults to gsm8k:train, whose problems carry reference solutions (200 of them)."""
    from thinkscope.experiments.decoding.calibrate import CalibrationConfig, run_calibration

    config = CalibrationConfig(
        model_spec=model_spec,
        top_k=top_k,
        reference_field=reference_field,
        batch_size=batch_size,
        **task_spec.model_dump(),
    )
    pdf = figure_format is FigureFormat.pdf
    summary = run_calibration(config, out, resume=resume, pdf=pdf)
    shown = ("problems", "tokens", "top1_accuracy", "A", "B", "fit")
    print_mapping({key: summary[key] for key in shown}, fmt)
    messages(fmt).print(f"calibration: {out / 'calibration.json'}; figures: {out / 'figures'}")


@format_option
def decoding_report_command(
    run: Path = typer.Argument(None, help="A run generated with --log-steps."),
    samples: Path = typer.Option(
        None, help="An lm-eval samples_*.jsonl to report on instead of a run."
    ),
    ranks: Path = typer.Option(
        None, help="The rank log of --samples (default: the steps_*.jsonl beside it)."
    ),
    filter_name: str = typer.Option(
        None, "--filter", help="The lm-eval filter whose scores count (default: the first)."
    ),
    out: Path = typer.Option(
        None, help="Folder of a --samples report (default: decoding_<task>_<date> beside it)."
    ),
    bin_runs: list[Path] = typer.Option(
        [], "--bin-run", help="A --confidence-bin-only run for the maj@k-by-bin figure (repeat)."
    ),
    threshold: float = typer.Option(
        None, help="A step is low-confidence when pmax < this (default 0.5)."
    ),
    figure_format: FigureFormat = FIGURE_FORMAT,
    fmt: Format = Format.table,
) -> None:
    """Accuracy against low-confidence steps, sampled ranks, and confidence-conditioned votes,
    for a run or for an lm-eval samples file and its rank log (--samples)."""
    from thinkscope.core.errors import UserError
    from thinkscope.experiments.decoding.step_report import decoding_report, samples_report

    pdf = figure_format is FigureFormat.pdf
    if (run is None) == (samples is None):
        raise UserError("give a RUN or --samples FILE (one of them)")
    if samples is None:
        for name, value in (("--ranks", ranks), ("--filter", filter_name), ("--out", out)):
            if value is not None:
                raise UserError(f"{name} goes with --samples, not with a RUN")
        report = decoding_report(run, bin_runs, 0.5 if threshold is None else threshold, pdf)
    elif bin_runs:
        raise UserError("--bin-run goes with a RUN, not with --samples")
    else:
        report = samples_report(samples, ranks, threshold, filter_name, out, pdf)
    shown = {name: report.tables[name] for name in ("low_confidence", "off_top", "mean_rank")}
    console = messages(fmt)
    print_tables(shown, fmt, {k: infer_columns(v, ".3f") for k, v in shown.items()}, console)
    s = report.summary
    console.print(
        f"majority vote: all samples {s['maj_all']:.3f}, confident half {s['maj_confident']:.3f}"
    )
    console.print(f"tables and figures: {report.path}")


#: decode-sweep's own defaults: short arithmetic, so that many decoding configs run quickly,
#: and 8 samples per problem (the k of maj@k and pass@k).
SWEEP_DEFAULTS = {
    "task": "demo-arith",
    "questions": 24,
    "prompt_style": "fewshot",
    "n": 8,
    "max_new_tokens": 64,
}


@format_option
@model_options
@spec_options(SamplingSpec, "sampling", "Sampling", defaults=SWEEP_DEFAULTS)
@spec_options(TaskSpec, "task_spec", "Task", defaults=SWEEP_DEFAULTS)
def decode_sweep_command(
    out: Path = typer.Option(..., help="Folder for the runs, results.csv and the figure."),
    configs: Path = typer.Option(..., help="YAML: config name -> generate options."),
    batch_size: int = typer.Option(64, help="Sequences decoded at once."),
    sampling: SamplingSpec | None = None,
    task_spec: TaskSpec | None = None,
    model_spec: ModelSpec | None = None,
    fmt: Format = Format.table,
) -> None:
    """Run several decoding configs over the same problems and seeds; one table. The options
    are every config's base (a config's own options win); the defaults are short arithmetic
    (demo-arith, 24 problems, 64 tokens) with 8 samples each, the k of maj@k and pass@k."""
    from thinkscope.experiments.decoding.sweep import decode_sweep

    base = {
        **model_spec.model_dump(),
        "batch_size": batch_size,
        **task_spec.model_dump(),
        **sampling.model_dump(),
    }
    table = decode_sweep(configs, out, base)
    print_table(table, fmt, infer_columns(table, ".3f"))
    messages(fmt).print(f"results: {out / 'results.csv'}; figure: {out / 'figures' / 'sweep.png'}")
