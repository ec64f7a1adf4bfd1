"""``score --ray``: Ray workers score a run's batches into its scoring shards.

The driver plans the batches exactly as :func:`thinkscope.scoring.score_frame` does; each worker
loads the scoring model once (from the driver's model spec) and writes
``scoring/<job>/<batch>.parquet`` atomically; the driver's
:func:`~thinkscope.scoring.score_frame` then merges the shards (computing nothing).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from thinkscope.cluster import Cluster
from thinkscope.core.progress import progress_bar
from thinkscope.metrics import MetricSpec
from thinkscope.models.spec import ModelSpec
from thinkscope.scoring.stage import batch_shard


def _score_worker(
    spec: ModelSpec,
    traces_path: Path,
    specs: Sequence[MetricSpec],
    batches: list[list[int]],
    chunk_rows: int | None,
    shard_dir: Path,
    max_tokens: int | None,
):
    from thinkscope.core.atomic import write_parquet
    from thinkscope.models import load_model
    from thinkscope.scoring.stage import first_tokens, score_batch

    lm, frame = load_model(spec), first_tokens(pd.read_parquet(traces_path), max_tokens)

    def work(unit: str) -> dict:
        rows = batches[int(unit)]
        write_parquet(
            batch_shard(shard_dir, int(unit)), score_batch(lm, frame, rows, specs, chunk_rows)
        )
        return dict(unit=unit, rows=len(rows))

    return work


def score_shards(
    cluster: Cluster,
    spec: ModelSpec,
    traces_path: Path,
    batches: list[list[int]],
    specs: Sequence[MetricSpec],
    chunk_rows: int | None,
    shard_dir: Path,
    show_progress: bool = True,
    max_tokens: int | None = None,
) -> int:
    """Score every batch whose shard is missing on ``cluster``; returns the traces scored.
    Each worker loads the model of ``spec``, the driver's resolved spec (a worker that finds
    other weights refuses)."""
    todo = [f"{i:05d}" for i in range(len(batches)) if not batch_shard(shard_dir, i).is_file()]
    factory = functools.partial(
        _score_worker,
        spec,
        traces_path,
        list(specs),
        batches,
        chunk_rows,
        shard_dir,
        max_tokens,
    )
    scored = 0
    with progress_bar("score (ray)", "traces", show_progress) as progress:
        bar = progress.add_task("score", total=sum(len(batches[int(u)]) for u in todo))
        for result in cluster.map(factory, todo):
            scored += result["rows"]
            progress.advance(bar, result["rows"])
    return scored
