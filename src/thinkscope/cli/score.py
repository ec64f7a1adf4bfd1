"""``thinkscope score``: the command-line face of :mod:`thinkscope.scoring`."""

from __future__ import annotations

from pathlib import Path

import typer

from thinkscope.cli.loading import own_model_options, with_own_model
from thinkscope.cli.options import spec_options
from thinkscope.cli.tables import Col, Format, format_option, messages, print_table
from thinkscope.cluster import ClusterSpec
from thinkscope.models.spec import ModelSpec
from thinkscope.scoring import DEFAULT_METRICS
from thinkscope.scoring.spec import ScoringSpec


@format_option
@spec_options(ClusterSpec, "cluster", "Cluster")
@spec_options(ScoringSpec, "scoring")
@own_model_options("Scoring model (default: the run's own model).")
def score_command(
    run_dir: Path = typer.Argument(..., help="Run folder made by `thinkscope generate`."),
    metrics: str = typer.Option(
        DEFAULT_METRICS,
        help="Comma-separated metric names or groups "
        "(confidence, all); parameters as name[k=v,...], e.g. dtr[g=0.6].",
    ),
    batch_tokens: int = typer.Option(4096, help="Padded tokens per forward pass."),
    model_spec: ModelSpec | None = None,
    cluster: ClusterSpec = ClusterSpec(),
    scoring: ScoringSpec = ScoringSpec(),
    fmt: Format = Format.table,
) -> None:
    """Add DTR, confidence and other metric columns to a run's traces."""
    from rich.markup import escape

    from thinkscope.metrics import parse_metrics
    from thinkscope.models import load_model
    from thinkscope.runstore.folder import Run
    from thinkscope.scoring.stage import score_run

    run = Run.open(run_dir)
    specs = parse_metrics(metrics)
    lm = load_model(with_own_model(model_spec, run.config, ("revision", "trust_remote_code")))
    record = run.path / "scores.json"
    before = record.stat().st_mtime_ns if record.is_file() else None
    frame = score_run(
        lm, run.path, specs, batch_tokens, cluster=cluster.cluster(), max_tokens=scoring.max_tokens
    )
    console = messages(fmt)
    if before is not None and record.stat().st_mtime_ns == before:
        console.print(
            f"{escape(str(run.path))} is already scored with these metrics: nothing to do"
        )
    rows = [
        {
            "column": spec.column,
            "mean": float(frame[spec.column].mean()),
            "traces": int(frame[spec.column].notna().sum()),
        }
        for spec in specs
        if spec.metric.scalar
    ]
    print_table(rows, fmt, (Col("column", role="name"), Col("mean", show=".4f"), Col("traces")))
    console.print(f"scored {len(frame)} traces in {escape(str(run.path))}")
