"""The Typer command ``thinkscope compare BASE TUNED``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape


def compare_command(
    base: str = typer.Argument(..., help="Base model (bundled name, directory or hub id)."),
    tuned: str = typer.Argument(..., help="Tuned model: a directory or a `train` folder."),
    out: Path = typer.Option(..., help="Result folder (rerun to resume)."),
    task: str = typer.Option("gsm8k"),
    questions: int = typer.Option(20),
    n: int = typer.Option(4, help="Samples per question (pass@k up to k = n)."),
    seed: int = typer.Option(0),
    temperature: float = typer.Option(0.7),
    max_new_tokens: int = typer.Option(256),
    prompt_style: str = typer.Option("r1", help="As the training data was made (r1, cot...)."),
    template: str = typer.Option("plain", help="plain, chat or auto."),
    batch_size: int = typer.Option(64),
    metrics: str = typer.Option("dtr,confidence", help="Metrics scored on both runs."),
) -> None:
    """Both models on the same problems and seeds: accuracy, pass@k, length, DTR, confidence,
    per-question wins and McNemar's test on paired greedy correctness."""
    from thinkscope.compare.core import CompareConfig, compare_models

    config = CompareConfig.parse(
        base=base,
        tuned=tuned,
        task=task,
        questions=questions,
        n=n,
        seed=seed,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        prompt_style=prompt_style,
        template=template,
        batch_size=batch_size,
        metrics=metrics,
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
