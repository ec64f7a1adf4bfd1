"""The Typer command ``thinkscope compare BASE TUNED``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from thinkscope.cli.options import sampling_options


@sampling_options
def compare_command(
    base: str = typer.Argument(..., help="Base model (bundled name, directory or hub id)."),
    tuned: str = typer.Argument(..., help="Tuned model: a directory or a `train` folder."),
    out: Path = typer.Option(..., help="Result folder (rerun to resume)."),
    task: str = typer.Option("gsm8k"),
    questions: int = typer.Option(20),
    n: int = typer.Option(4, help="Samples per question (pass@k up to k = n)."),
    prompt_style: str = typer.Option("r1", help="As the training data was made (r1, cot...)."),
    template: str = typer.Option("plain", help="plain, chat or auto."),
    batch_size: int = typer.Option(64),
    metrics: str = typer.Option("dtr,confidence", help="Metrics scored on both runs."),
    sampling: dict | None = None,
) -> None:
    """Both models on the same problems and seeds: accuracy, pass@k, length, DTR, confidence,
    per-question wins and McNemar's test on paired greedy correctness."""
    from thinkscope.experiments.compare.core import CompareConfig, compare_models

    config = CompareConfig.parse(
        base=base,
        tuned=tuned,
        task=task,
        questions=questions,
        n=n,
        prompt_style=prompt_style,
        template=template,
        batch_size=batch_size,
        metrics=metrics,
        **(sampling or {}),
    )
    result = compare_models(config, out)
    console = Console()
    console.print(result.summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    test = result.mcnemar
    console.print(
        f"greedy: both {test.both}, base only {test.base_only}, tuned only {test.tuned_only}, "
        f"neither {test.neither}; McNemar p = {test.pvalue:.3g}"
    )
    console.print(f"report: {escape(str(result.path / 'report.html'))}")
    tuned = escape(str(result.path / "runs" / "tuned"))
    console.print(f"also a section of the tuned run's report: thinkscope report {tuned}")


@sampling_options
def sft_filtering_command(
    out: Path = typer.Option(..., help="Result folder (rerun to resume)."),
    model: str = typer.Option("smollm2-135m"),
    task: str = typer.Option("gsm8k", help="Held-out evaluation problems."),
    train_task: str = typer.Option("gsm8k:train", help="Problems the training data comes from."),
    questions: int = typer.Option(32, help="Training problems (traces and references)."),
    n: int = typer.Option(4, help="Traces per training problem."),
    min_dtr: float = typer.Option(0.3, help="DTR threshold of the filtered arm."),
    keep_per_question: int = typer.Option(2, help="Traces kept per question (filtered arm)."),
    max_steps: int = typer.Option(20, help="Optimizer steps per adapter (the shared budget)."),
    batch_size: int = typer.Option(4),
    learning_rate: float = typer.Option(2e-4),
    lora_rank: int = typer.Option(16),
    max_length: int = typer.Option(512),
    eval_questions: int = typer.Option(20),
    eval_n: int = typer.Option(4),
    sampling: dict | None = None,
) -> None:
    """Seed 004: reference vs correct vs all traces vs DTR-filtered, one adapter each, one table."""
    from thinkscope.experiments.sft_filtering import SftFilteringConfig, run_sft_filtering

    config = SftFilteringConfig.parse(
        model=model,
        task=task,
        train_task=train_task,
        questions=questions,
        n=n,
        min_dtr=min_dtr,
        keep_per_question=keep_per_question,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lora_rank=lora_rank,
        max_length=max_length,
        eval_questions=eval_questions,
        eval_n=eval_n,
        **(sampling or {}),
    )
    table = run_sft_filtering(config, out)
    console = Console()
    console.print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    console.print(f"results: {escape(str(out / 'results.csv'))}")
