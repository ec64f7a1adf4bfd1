"""``thinkscope think-at-n``: register with ``app.command("think-at-n")(think_at_n_command)``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from thinkscope.cli.decoding import decoding_options
from thinkscope.cli.loading import loading_options
from thinkscope.cluster import RAY_OPTION
from thinkscope.models.loading import Loading

if TYPE_CHECKING:
    import pandas as pd


@decoding_options
@loading_options
def think_at_n_command(
    out: Path = typer.Option(..., help="Run folder to create (or to resume)."),
    model: str = typer.Option(
        "smollm2-135m", help="smollm2-135m, a model directory, a .gguf file or a hub id."
    ),
    task: str = typer.Option(
        "demo-arith", help="gsm8k, gym:<name>[?k=v&...], jsonl:<path>, or a preset."
    ),
    questions: int = typer.Option(20, help="How many problems."),
    n: int = typer.Option(8, help="Samples per problem."),
    prefix_tokens: int = typer.Option(8, help="Think@n scores the first P tokens of each sample."),
    keep_ratio: float = typer.Option(0.5, help="Share of samples Think@n keeps, in (0, 1]."),
    repeats: int = typer.Option(3, help="Repeats; repeat r samples with seed + r."),
    max_new_tokens: int = typer.Option(48),
    seed: int = typer.Option(0),
    temperature: float = typer.Option(0.7),
    top_p: float = typer.Option(1.0),
    prompt_style: str = typer.Option("fewshot", help="cot, direct, r1 or fewshot."),
    template: str = typer.Option("auto", help="auto, chat or plain."),
    fewshot: int = typer.Option(0, help="Worked examples (fewshot style: 2 when 0)."),
    g: float = typer.Option(0.5, help="DTR settling threshold (JSD, in --base units)."),
    base: str = typer.Option("e", help="Log base of --g: e (nats), 2 (bits) or 10."),
    rho: float = typer.Option(0.85, help="DTR: deep if settled at layer >= ceil(rho L)."),
    eta: float = typer.Option(0.5, help="DeepConf: share of samples kept."),
    window: int = typer.Option(16, help="DeepConf group (window) size in tokens."),
    warmup: int = typer.Option(None, help="DeepConf online warm-up samples (default n // 4)."),
    continuous: str = typer.Option(
        "depth",
        help="think@n-depth's prefix score: depth (mean settling depth) or dtr+depth "
        "(DTR, ties broken by mean settling depth).",
    ),
    batch_size: int = typer.Option(128, help="Sequences decoded at once."),
    resume: bool = typer.Option(False, help="Continue a killed run in --out."),
    backend: str = typer.Option(
        "auto",
        help="auto (vLLM when installed with CUDA), hf or vllm: what generates; the "
        "prefix scores always come from the HF model.",
    ),
    ray: str = typer.Option(None, **RAY_OPTION),
    workers: int = typer.Option(1, help="Ray workers (> 1 starts a local cluster)."),
    decoding: dict | None = None,
    loading: Loading | None = None,
) -> None:
    """Think@n, Self-Certainty@n, DeepConf and Cons@n on one sample pool: accuracy versus tokens."""
    from thinkscope.cluster import from_options
    from thinkscope.select.experiment import SelectConfig, run_selection

    config = SelectConfig.parse(
        model=model,
        task=task,
        questions=questions,
        n=n,
        prefix_tokens=prefix_tokens,
        keep_ratio=keep_ratio,
        repeats=repeats,
        max_new_tokens=max_new_tokens,
        seed=seed,
        temperature=temperature,
        top_p=top_p,
        prompt_style=prompt_style,
        template=template,
        fewshot=fewshot,
        g=g,
        base=base,
        rho=rho,
        eta=eta,
        window=window,
        warmup=warmup,
        continuous=continuous,
        batch_size=batch_size,
        backend=backend,
        **(decoding or {}),
    )
    complete = (out / "selection.csv").is_file()
    table = run_selection(
        config, out, resume=resume, loading=loading, cluster=from_options(ray, workers)
    )
    console = Console()
    if complete:
        console.print(f"{out} is complete (same config): nothing to do")
    print_table(table, console)
    console.print(f"run folder: {out}  (selection.csv, selection.png)")


def print_table(table: pd.DataFrame, console: Console) -> None:
    view = Table(
        "method",
        "accuracy",
        "± std",
        "tokens",
        "prefill",
        "relative cost",
        "voters",
        "lens s",
        "lens GFLOP",
    )
    for row in table.itertuples():
        view.add_row(
            row.method,
            f"{row.accuracy:.3f}",
            f"{row.accuracy_std:.3f}",
            f"{row.tokens:,.0f}",
            f"{row.prefill_tokens:,.0f}",
            f"{row.relative_cost:.2f}",
            f"{row.voters:.1f}",
            f"{row.lens_s:.1f}",
            f"{row.lens_gflop:,.0f}",
        )
    console.print(view)
