"""``thinkscope score``: the command-line face of :mod:`thinkscope.scoring`."""

from __future__ import annotations

from pathlib import Path

import typer

from thinkscope.cli.loading import loading_options
from thinkscope.cluster import RAY_OPTION
from thinkscope.models.loading import Loading
from thinkscope.scoring import DEFAULT_METRICS


@loading_options
def score_command(
    run_dir: Path = typer.Argument(..., help="Run folder made by `thinkscope generate`."),
    metrics: str = typer.Option(
        DEFAULT_METRICS,
        help="Comma-separated metric names or groups "
        "(confidence, all); parameters as name[k=v,...], e.g. dtr[g=0.6].",
    ),
    model: str = typer.Option(None, help="Scoring model (default: the run's own model)."),
    batch_tokens: int = typer.Option(4096, help="Padded tokens per forward pass."),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    ray: str = typer.Option(None, **RAY_OPTION),
    workers: int = typer.Option(1, help="Ray workers (> 1 starts a local cluster)."),
    loading: Loading | None = None,
) -> None:
    """Add DTR, confidence and other metric columns to a run's traces."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from thinkscope.cluster import from_options
    from thinkscope.metrics import parse_metrics
    from thinkscope.models import load_model
    from thinkscope.runs.folder import Run
    from thinkscope.scoring.stage import score_run

    run = Run.open(run_dir)
    specs = parse_metrics(metrics)
    loading = Loading.of(loading).replace(device=device)  # Ray workers load it the same way
    lm = load_model(model or run.config.get("model", "smollm2-135m"), **loading)
    record = run.path / "scores.json"
    before = record.stat().st_mtime_ns if record.is_file() else None
    frame = score_run(
        lm, run.path, specs, batch_tokens, cluster=from_options(ray, workers), loading=loading
    )
    if before is not None and record.stat().st_mtime_ns == before:
        Console().print(
            f"{escape(str(run.path))} is already scored with these metrics: nothing to do"
        )
    table = Table("column", "mean", "traces")
    for spec in specs:
        if spec.metric.scalar:
            values = frame[spec.column]
            table.add_row(
                escape(spec.column), f"{values.mean():.4f}", str(int(values.notna().sum()))
            )
    Console().print(table)
    Console().print(f"scored {len(frame)} traces in {escape(str(run.path))}")
