"""``thinkscope calibrate``, ``decoding-report`` and ``decode-sweep``: thin Typer layers."""

from __future__ import annotations

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


@format_option
@model_options
@spec_options(TaskSpec, "task_spec", "Task", defaults={"task": "gsm8k:train", "questions": 200})
def calibrate_command(
    out: Path = typer.Option(..., help="Folder for calibration.json, the grid and figures."),
    top_k: int = typer.Option(20, help="Ranks recorded per position."),
    reference_field: str = typer.Option(None, help="JSONL field with the reference response."),
    batch_size: int = typer.Option(4, help="Solutions per forward pass."),
    resume: bool = typer.Option(False, help="Continue a killed calibration in --out."),
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
    summary = run_calibration(config, out, resume=resume)
    shown = ("problems", "tokens", "top1_accuracy", "A", "B", "fit")
    print_mapping({key: summary[key] for key in shown}, fmt)
    messages(fmt).print(f"calibration: {out / 'calibration.json'}; figures: {out / 'figures'}")


@format_option
def decoding_report_command(
    run: Path = typer.Argument(..., help="A run generated with --log-steps."),
    bin_runs: list[Path] = typer.Option(
        [], "--bin-run", help="A --confidence-bin-only run for the maj@k-by-bin figure (repeat)."
    ),
    threshold: float = typer.Option(0.5, help="A step is low-confidence when pmax < this."),
    fmt: Format = Format.table,
) -> None:
    """Accuracy against low-confidence steps, sampled ranks, and confidence-conditioned votes."""
    from thinkscope.experiments.decoding.step_report import decoding_report

    report = decoding_report(run, bin_runs, threshold)
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
