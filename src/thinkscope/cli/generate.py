"""``thinkscope generate`` and ``demo``: sample, grade, and write a run folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from thinkscope.cli.decoding import decoding_options
from thinkscope.cli.loading import model_options
from thinkscope.cli.options import spec_options
from thinkscope.cli.tables import Format, format_option, print_mapping
from thinkscope.cluster import ClusterSpec
from thinkscope.decoding.config import DecodingKnobs
from thinkscope.generation.spec import SamplingSpec
from thinkscope.models.spec import EngineSpec, ModelSpec
from thinkscope.tasks.spec import TaskSpec


@format_option
@spec_options(ClusterSpec, "cluster", "Cluster")
@decoding_options
@spec_options(EngineSpec, "engine", "vLLM")
@model_options
@spec_options(SamplingSpec, "sampling", "Sampling")
@spec_options(TaskSpec, "task_spec", "Task")
def generate(
    out: Path = typer.Option(..., help="Run folder to create (or to resume)."),
    batch_size: int = typer.Option(64, help="Sequences decoded at once."),
    resume: bool = typer.Option(False, help="Continue a killed run in --out."),
    backend: str = typer.Option("auto", help="auto (vLLM when installed with CUDA), hf or vllm."),
    decoding: DecodingKnobs | None = None,
    model_spec: ModelSpec | None = None,
    engine: EngineSpec | None = None,
    sampling: SamplingSpec | None = None,
    task_spec: TaskSpec | None = None,
    cluster: ClusterSpec = ClusterSpec(),
    fmt: Format = Format.table,
) -> None:
    """Sample N completions per problem, grade them, and write a run folder."""
    from thinkscope.generation.pipeline import GenerateConfig, generate_run, summarize

    config = GenerateConfig.parse(
        **model_spec.model_dump(),
        **engine.model_dump(),
        batch_size=batch_size,
        backend=backend,
        **task_spec.model_dump(),
        **sampling.model_dump(),
        **decoding.model_dump(),
    )
    run = generate_run(config, out, resume=resume, cluster=cluster.cluster())
    print_mapping({**summarize(run.traces(), run.timing), "run": str(run.path)}, fmt)


def demo(out: Path = typer.Option(None, help="Run folder (default: runs/demo-<time>).")) -> None:
    """The main job on the bundled model: generate a small arithmetic mix and summarise it."""
    from thinkscope.experiments.demo import run_demo

    run_demo(out, Console())
