"""``thinkscope generate`` and ``demo``: sample, grade, and write a run folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from thinkscope.cli.decoding import decoding_options
from thinkscope.cli.loading import loading_options
from thinkscope.cli.options import sampling_options
from thinkscope.cluster import RAY_OPTION
from thinkscope.core.errors import UserError

console = Console()


def _fields(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in ("question", "answer", "id"):
            raise UserError(f"--field takes question=KEY, answer=KEY or id=KEY, got {pair!r}")
        out[key] = value
    return out


@decoding_options
@loading_options
@sampling_options
def generate(
    out: Path = typer.Option(..., help="Run folder to create (or to resume)."),
    model: str = typer.Option(
        "smollm2-135m", help="smollm2-135m, a model directory, a .gguf file or a hub id."
    ),
    task: str = typer.Option(
        "gsm8k", help="gsm8k, gym:<name>[?k=v&...], jsonl:<path>, or a preset."
    ),
    questions: int = typer.Option(20, help="How many problems."),
    n: int = typer.Option(4, help="Samples per problem."),
    temperature: float = typer.Option(0.7, help="0 is greedy."),
    top_p: float = typer.Option(1.0),
    top_k: int = typer.Option(0),
    min_p: float = typer.Option(0.0),
    prompt_style: str = typer.Option("cot", help="cot, direct, r1 or fewshot."),
    template: str = typer.Option("auto", help="auto, chat or plain."),
    fewshot: int = typer.Option(0, help="Worked examples before the question."),
    stop: list[str] = typer.Option([], help="Stop string (repeatable)."),
    top_logprobs: int = typer.Option(0, help="Record the top-k log-probs of every step."),
    batch_size: int = typer.Option(64, help="Sequences decoded at once."),
    field: list[str] = typer.Option([], help="JSONL field mapping, e.g. question=problem."),
    resume: bool = typer.Option(False, help="Continue a killed run in --out."),
    backend: str = typer.Option("auto", help="auto (vLLM when installed with CUDA), hf or vllm."),
    ray: str = typer.Option(None, **RAY_OPTION),
    workers: int = typer.Option(1, help="Ray workers (> 1 starts a local cluster)."),
    decoding: dict | None = None,
    loading: dict | None = None,
    sampling: dict | None = None,
) -> None:
    """Sample N completions per problem, grade them, and write a run folder."""
    from thinkscope.cluster import from_options
    from thinkscope.generation.pipeline import GenerateConfig, generate_run, summarize

    config = GenerateConfig.parse(
        model=model,
        task=task,
        questions=questions,
        n=n,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        prompt_style=prompt_style,
        template=template,
        fewshot=fewshot,
        stop=stop,
        top_logprobs=top_logprobs,
        batch_size=batch_size,
        fields=_fields(field),
        backend=backend,
        **(decoding or {}),
        **(sampling or {}),
    )
    run = generate_run(
        config, out, resume=resume, cluster=from_options(ray, workers), loading=loading
    )
    _print_summary(summarize(run.traces(), run.timing), run.path)


def _print_summary(summary: dict, path: Path) -> None:
    table = Table(show_header=False, box=None)
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), str(value))
    table.add_row("run", str(path))
    console.print(table)


def demo(out: Path = typer.Option(None, help="Run folder (default: runs/demo-<time>).")) -> None:
    """The main job on the bundled model: generate a small arithmetic mix and summarise it."""
    from thinkscope.experiments.demo import run_demo

    run_demo(out, console)
