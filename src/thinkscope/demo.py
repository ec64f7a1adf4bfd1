"""``thinkscope demo``: the main job on the bundled model, end to end, in a few minutes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console

from thinkscope.generate.pipeline import GenerateConfig, generate_run, summarize

DEMO_CONFIG = GenerateConfig(
    model="smollm2-135m",
    task="demo-arith",
    questions=24,
    n=4,
    seed=0,
    max_new_tokens=48,
    temperature=0.7,
    prompt_style="fewshot",
    fewshot=2,
)


def run_demo(out: Path | None, console: Console) -> None:
    """Generate the demo run into ``out`` (resuming it if a previous demo was cut short)."""
    out = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    run = generate_run(DEMO_CONFIG, out, resume=True)
    summary = summarize(run.traces(), run.timing)
    console.print(
        f"[bold]demo[/]: {summary['samples']} samples, accuracy {summary['accuracy']:.1%}, "
        f"mean length {summary['mean_tokens']:.1f} tokens, {summary['tokens_per_s']} tok/s"
    )
    console.print(f"run folder: {run.path}")
