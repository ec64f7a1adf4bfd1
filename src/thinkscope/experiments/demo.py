"""``thinkscope demo``: the main job on the bundled model, end to end, in a few minutes.

Generate a mix of one-digit arithmetic problems (the bundled model gets about a third right,
so there are correct and wrong samples), score every token's settling depth and the
confidence baselines, relate them to correctness, and write the HTML report.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from thinkscope.analysis import analyze_run, build_report
from thinkscope.analysis.console import metric_rich_table
from thinkscope.generation.pipeline import GenerateConfig, generate_run, summarize
from thinkscope.models import load_model
from thinkscope.models.spec import ModelSpec
from thinkscope.scoring import score

DEMO_CONFIG = GenerateConfig(
    model="smollm2-135m",
    task="demo-arith",
    questions=24,
    n=8,
    seed=0,
    max_new_tokens=48,
    temperature=0.7,
    prompt_style="fewshot",
    fewshot=2,
)
DEMO_METRICS = "all"  # every metric, and the per-token JSD profiles the report draws


def run_demo(out: Path | None, console: Console) -> Path:
    """Generate, score, analyse and report into ``out`` (a killed demo resumes there)."""
    out = out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    lm = load_model(ModelSpec.of(DEMO_CONFIG))
    run = generate_run(DEMO_CONFIG, out, resume=True, lm=lm)
    summary = summarize(run.traces(), run.timing)
    console.print(
        f"[bold]generated[/] {summary['samples']} samples: accuracy {summary['accuracy']:.1%}, "
        f"mean length {summary['mean_tokens']:.1f} tokens, {summary['tokens_per_s']} tok/s"
    )
    score(lm, run.path, metrics=DEMO_METRICS)
    analysis = analyze_run(run.path)
    console.print(metric_rich_table(analysis.metrics))
    for notice in analysis.notices:
        console.print(f"[yellow]note:[/] {escape(notice)}", soft_wrap=True)
    report = build_report(run.path)
    console.print(f"run folder: {run.path}")
    console.print(f"report: {report.path}", soft_wrap=True)
    return run.path
