"""``thinkscope think-at-n``: register with ``app.command("think-at-n")(think_at_n_command)``."""

from __future__ import annotations

from pathlib import Path

import typer

from thinkscope.cli.decoding import decoding_options
from thinkscope.cli.loading import model_options
from thinkscope.cli.options import spec_options
from thinkscope.cli.tables import Col, Format, format_option, messages, print_table
from thinkscope.cluster import ClusterSpec
from thinkscope.decoding.config import DecodingKnobs
from thinkscope.generation.spec import SamplingSpec
from thinkscope.metrics.dtr_spec import DTRSpec
from thinkscope.models.spec import VLLM_SHARED_MEMORY, EngineSpec, ModelSpec
from thinkscope.tasks.spec import TaskSpec

#: think-at-n's own defaults: short arithmetic that a small model answers in 48 tokens, 8
#: samples to select from, DeepConf's k of recorded log-probs, and less GPU memory for vLLM,
#: whose GPU the HF model that scores shares (SelectConfig has the same).
OWN_DEFAULTS = {
    "task": "demo-arith",
    "prompt_style": "fewshot",
    "n": 8,
    "max_new_tokens": 48,
    "top_logprobs": 20,
    "gpu_memory_utilization": VLLM_SHARED_MEMORY,
}


@format_option
@spec_options(ClusterSpec, "cluster", "Cluster")
@decoding_options
@spec_options(EngineSpec, "engine", "vLLM", defaults=OWN_DEFAULTS)
@model_options
@spec_options(DTRSpec, "dtr", "DTR")
@spec_options(SamplingSpec, "sampling", "Sampling", defaults=OWN_DEFAULTS)
@spec_options(TaskSpec, "task_spec", "Task", defaults=OWN_DEFAULTS)
def think_at_n_command(
    out: Path = typer.Option(..., help="Run folder to create (or to resume)."),
    prefix_tokens: int = typer.Option(8, help="Think@n scores the first P tokens of each sample."),
    keep_ratio: float = typer.Option(0.5, help="Share of samples Think@n keeps, in (0, 1]."),
    repeats: int = typer.Option(3, help="Repeats, each with its own sample seeds."),
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
    decoding: DecodingKnobs | None = None,
    model_spec: ModelSpec | None = None,
    engine: EngineSpec | None = None,
    dtr: DTRSpec | None = None,
    sampling: SamplingSpec | None = None,
    task_spec: TaskSpec | None = None,
    cluster: ClusterSpec = ClusterSpec(),
    fmt: Format = Format.table,
) -> None:
    """Think@n, Self-Certainty@n, DeepConf and Cons@n on one sample pool: accuracy versus
    tokens. Defaults differ from generate's where selection needs it: short arithmetic
    (demo-arith, fewshot, 48 tokens), 8 samples, 20 recorded log-probs (DeepConf's k), and
    vLLM's GPU memory share 0.6 (the HF model that scores shares the GPU)."""
    from thinkscope.select.experiment import SelectConfig, run_selection

    config = SelectConfig.parse(
        **model_spec.model_dump(),
        **engine.model_dump(),
        prefix_tokens=prefix_tokens,
        keep_ratio=keep_ratio,
        repeats=repeats,
        eta=eta,
        window=window,
        warmup=warmup,
        continuous=continuous,
        batch_size=batch_size,
        backend=backend,
        **task_spec.model_dump(),
        **sampling.model_dump(),
        **dtr.model_dump(),
        **decoding.model_dump(),
    )
    complete = (out / "selection.csv").is_file()
    table = run_selection(config, out, resume=resume, cluster=cluster.cluster())
    console = messages(fmt)
    if complete:
        console.print(f"{out} is complete (same config): nothing to do")
    print_table(table, fmt, selection_columns(config.repeats))
    console.print(f"run folder: {out}  (selection.csv, selection.png)")


def selection_columns(repeats: int) -> list[Col]:
    """The selection table as printed: the spread over repeats only where there are repeats;
    at 80 columns the lens costs, the prefill and the voters go first."""
    return [
        Col("method", role="name"),
        Col("accuracy", show=".3f"),
        *([Col("accuracy_std", "± std", show=".3f")] if repeats > 1 else []),
        Col("tokens", show=",.0f"),
        Col("prefill_tokens", "prefill", show=",.0f", drop=3),
        Col("relative_cost", "rel. cost", show=".2f"),
        Col("voters", show=".1f", drop=1),
        Col("lens_s", "lens s", show=".1f", drop=2),
        Col("lens_gflop", "lens GFLOP", show=",.0f", drop=4),
    ]
