"""``thinkscope calibrate``, ``decoding-report`` and ``decode-sweep``: thin Typer layers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def calibrate_command(
    out: Path = typer.Option(..., help="Folder for calibration.json, the grid and figures."),
    model: str = typer.Option("smollm2-135m", help="smollm2-135m, a directory or a hub id."),
    task: str = typer.Option("gsm8k:train", help="A task with reference solutions."),
    questions: int = typer.Option(200, help="How many reference solutions to teacher-force."),
    top_k: int = typer.Option(20, help="Ranks recorded per position."),
    prompt_style: str = typer.Option("cot"),
    template: str = typer.Option("auto"),
    fewshot: int = typer.Option(0),
    reference_field: str = typer.Option(None, help="JSONL field with the reference response."),
    batch_size: int = typer.Option(4, help="Solutions per forward pass."),
    resume: bool = typer.Option(False, help="Continue a killed calibration in --out."),
) -> None:
    """Teacher-force reference solutions: rank calibration grid and power-law fit."""
    from thinkscope.experiments.decoding.calibrate import CalibrationConfig, run_calibration

    config = CalibrationConfig(
        model=model,
        task=task,
        questions=questions,
        top_k=top_k,
        prompt_style=prompt_style,
        template=template,
        fewshot=fewshot,
        reference_field=reference_field,
        batch_size=batch_size,
    )
    summary = run_calibration(config, out, resume=resume)
    console.print(
        f"{summary['tokens']:,} reference tokens of {summary['problems']} problems; "
        f"top-1 accuracy {summary['top1_accuracy']:.3f}; "
        f"fit log10 c = {summary['A']:.4f} + {summary['B']:.4f} log10 p"
    )
    console.print(f"calibration: {out / 'calibration.json'}; figures: {out / 'figures'}")


def decoding_report_command(
    run: Path = typer.Argument(..., help="A run generated with --log-steps."),
    bin_runs: list[Path] = typer.Option(
        [], "--bin-run", help="A --confidence-bin-only run for the maj@k-by-bin figure (repeat)."
    ),
    threshold: float = typer.Option(0.5, help="A step is low-confidence when pmax < this."),
) -> None:
    """Accuracy against low-confidence steps, sampled ranks, and confidence-conditioned votes."""
    from thinkscope.experiments.decoding.step_report import decoding_report

    report = decoding_report(run, bin_runs, threshold)
    for name in ("low_confidence", "off_top", "mean_rank"):
        console.print(f"[bold]{name}[/]")
        console.print(report.tables[name].to_string(index=False, float_format="{:.3f}".format))
    s = report.summary
    console.print(
        f"majority vote: all samples {s['maj_all']:.3f}, confident half {s['maj_confident']:.3f}"
    )
    console.print(f"tables and figures: {report.path}")


def decode_sweep_command(
    out: Path = typer.Option(..., help="Folder for the runs, results.csv and the figure."),
    configs: Path = typer.Option(..., help="YAML: config name -> generate options."),
    model: str = typer.Option("smollm2-135m"),
    task: str = typer.Option("demo-arith"),
    questions: int = typer.Option(24),
    n: int = typer.Option(8, help="Samples per problem (k of maj@k and pass@k)."),
    seed: int = typer.Option(0),
    max_new_tokens: int = typer.Option(64),
    prompt_style: str = typer.Option("fewshot"),
    template: str = typer.Option("auto"),
    batch_size: int = typer.Option(64),
) -> None:
    """Run several decoding configs over the same problems and seeds; one table."""
    from thinkscope.experiments.decoding.sweep import decode_sweep

    base = {
        "model": model,
        "task": task,
        "questions": questions,
        "n": n,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "prompt_style": prompt_style,
        "template": template,
        "batch_size": batch_size,
    }
    table = decode_sweep(configs, out, base)
    console.print(table.to_string(index=False, float_format="{:.3f}".format))
    console.print(f"results: {out / 'results.csv'}; figure: {out / 'figures' / 'sweep.png'}")
