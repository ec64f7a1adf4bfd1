"""``thinkscope score``: add metric columns to a run's traces, resumably.

Files written into the run folder::

    traces.parquet         + one float column per scalar metric, named by its spec
                           (``dtr``, ``logprob``, ``dtr[g=0.6]``; see metrics/registry.py)
    token_metrics.parquet  one row per trace, keyed by problem_id, sample_idx: per-token arrays
                           (``settling_depth`` list<int>, ``deep`` list<bool>, ``token_conf``,
                           ``jsd_profile`` list<list<float>> [T][L] nats, ...) and per-trace
                           vectors (``jsd-profile``: mean JSD per layer)
    scores.json            {"columns": {column: entry}, "vectors": {...}, "arrays": {...},
                           "model", "weights", "dtype", "max_tokens", "n_layers",
                           "vocab_size"}; entry = {"metric", "params" (the full dict), "model",
                           "weights", "dtype", "max_tokens", "arrays", "scored_at"}, and for
                           a metric that reads attention or feed-forward parts "layers":
                           {part: the layers measured}
    scoring/<job>/*.parquet  one shard per finished batch while scoring runs (atomic, removed
                           after the merge); a rerun with the same request skips finished batches

Scoring again with the same metrics, parameters and model (the same weights, by their identity
in :mod:`thinkscope.models.identity`, in the same dtype) does nothing; new parameters or other
weights (re)write their columns and leave the others alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from thinkscope.core.atomic import write_json, write_parquet
from thinkscope.core.errors import UserError
from thinkscope.core.progress import progress_bar
from thinkscope.metrics import MetricSpec, check_applicable, measure, parse_metrics
from thinkscope.models import LM
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import add_stage
from thinkscope.runstore.trace import Trace
from thinkscope.scoring import DEFAULT_METRICS

KEYS = ["problem_id", "sample_idx"]


def check_tokenizer(lm: LM, frame: pd.DataFrame) -> None:
    """Raise :class:`UserError` if ``frame``'s token ids did not come from ``lm``'s tokenizer."""
    tok = lm.tokenizer
    rows = [np.asarray(r, dtype=np.int64) for c in ("prompt_ids", "token_ids") for r in frame[c]]
    ids = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    if len(ids) and (ids.max() >= lm.vocab_size or ids.min() < 0):
        raise UserError(
            f"the traces hold token ids outside {lm.name}'s vocabulary: "
            "they were made with a different tokenizer; score with the model that made them"
        )
    if {"prompt", "prompt_ids"} <= set(frame.columns):
        for text, stored in {r.prompt: list(r.prompt_ids) for r in frame.itertuples()}.items():
            variants = (tok(text, add_special_tokens=s)["input_ids"] for s in (False, True))
            if not any(list(v) == stored for v in variants):
                raise UserError(
                    f"the traces' prompts tokenize differently with {lm.name}'s tokenizer: "
                    "they were made with a different tokenizer; score with the model that made them"
                )
    if {"completion", "token_ids"} <= set(frame.columns):
        rows = [r for r in frame.itertuples() if len(r.token_ids)]
        bad = sum(
            tok.decode(list(r.token_ids), skip_special_tokens=True) != r.completion for r in rows
        )
        if rows and 2 * bad >= len(rows):
            raise UserError(
                f"{bad} of {len(rows)} completions decode differently with {lm.name}'s "
                "tokenizer: the traces were made with a different tokenizer"
            )


def first_tokens(frame: pd.DataFrame, max_tokens: int | None) -> pd.DataFrame:
    """``frame`` with each trace's ``token_ids`` cut to its first ``max_tokens`` (None: as is)."""
    if max_tokens is None:
        return frame
    out = frame.copy()
    out["token_ids"] = [np.asarray(t)[:max_tokens] for t in frame["token_ids"]]
    return out


def plan_batches(frame: pd.DataFrame, batch_tokens: int) -> list[list[int]]:
    """Row indices in batches of similar length whose padded size is at most ``batch_tokens``."""
    lengths = [
        len(p) + len(t) for p, t in zip(frame["prompt_ids"], frame["token_ids"], strict=True)
    ]
    order = sorted(range(len(frame)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def batch_shard(shard_dir: Path, index: int) -> Path:
    """The shard of batch ``index`` of :func:`plan_batches` (written by the driver or a Ray
    worker, read back on a rerun)."""
    return shard_dir / f"{index:05d}.parquet"


def _cell(values: torch.Tensor):
    """A per-token tensor ``[T]`` or ``[T, L]`` as compact numpy (int32, float32, bool)."""
    array = values.numpy()
    if array.dtype.kind in "iu":
        array = array.astype(np.int32)
    elif array.dtype.kind == "f":
        array = array.astype(np.float32)
    return list(array) if array.ndim == 2 else array


def score_batch(
    lm: LM,
    frame: pd.DataFrame,
    rows: list[int],
    specs: Sequence[MetricSpec],
    chunk_rows: int | None = None,
) -> pd.DataFrame:
    """Scores of ``frame.iloc[rows]``: ``_row``, one column per spec, one per per-token array."""
    sub = frame.iloc[rows]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="DTR is undefined")
        results = measure(lm, list(sub["prompt_ids"]), list(sub["token_ids"]), specs, chunk_rows)
    out: dict[str, list] = {"_row": rows}
    for per_trace in results:
        arrays = {}
        for column, result in per_trace.items():
            out.setdefault(column, []).append(result.value)
            arrays.update(result.arrays)  # metrics that share an array give the same values
        for name, values in arrays.items():
            out.setdefault(name, []).append(_cell(values))
    return pd.DataFrame(out)


def score_frame(
    lm: LM,
    frame: pd.DataFrame,
    specs: Sequence[MetricSpec],
    batch_tokens: int = 4096,
    chunk_rows: int | None = None,
    shard_dir: Path | None = None,
    show_progress: bool = True,
    max_tokens: int | None = None,
) -> pd.DataFrame:
    """Scores of every trace in ``frame`` (in its order), batch by batch, of its first
    ``max_tokens`` generated tokens (None: all).

    With ``shard_dir`` each finished batch is written there atomically and skipped on a rerun.
    """
    check_applicable(lm, specs)
    check_tokenizer(lm, frame)
    frame = first_tokens(frame, max_tokens)
    empty = int((frame["token_ids"].map(len) == 0).sum())
    if empty:
        warnings.warn(
            f"{empty} trace(s) have empty completions: their DTR and per-token metrics are NaN",
            stacklevel=3,
        )
    batches, parts = plan_batches(frame, batch_tokens), []
    with progress_bar("score", "traces", show_progress) as progress:
        bar = progress.add_task("score", total=len(frame))
        for index, rows in enumerate(batches):
            shard = batch_shard(shard_dir, index) if shard_dir else None
            if shard is not None and shard.is_file():
                part = pd.read_parquet(shard)
            else:
                part = score_batch(lm, frame, rows, specs, chunk_rows)
                if shard is not None:
                    write_parquet(shard, part)
            parts.append(part)
            progress.advance(bar, len(rows))
    merged = pd.concat(parts, ignore_index=True).sort_values("_row")
    merged = merged.drop(columns="_row").reset_index(drop=True)
    for spec in specs:  # run-level metrics (rev: z-scores over the run's traces)
        if spec.metric.finalize is not None and len(merged):
            merged[spec.column] = spec.metric.finalize(np.stack(merged[spec.column].to_numpy()))
    return merged


def model_key(lm: LM) -> dict:
    """What scores depend on besides the metric: the model's name, the identity of its
    weights (:mod:`thinkscope.models.identity`) and the dtype it ran in."""
    return {"model": lm.name, "weights": lm.weights, "dtype": str(lm.dtype).removeprefix("torch.")}


def _entry(spec: MetricSpec, model: dict) -> dict:
    return {"metric": spec.metric.name, "params": dict(spec.params), **model}


def _is_done(
    spec: MetricSpec, model: dict, record: dict, traces: pd.DataFrame, tokens: pd.DataFrame
) -> bool:
    kind = "columns" if spec.metric.scalar else "vectors"
    entry = record.get(kind, {}).get(spec.column)
    where = traces if spec.metric.scalar else tokens
    arrays = [spec.array_name(a) for a in spec.metric.arrays]
    return (
        entry is not None
        and {k: entry.get(k) for k in ("metric", "params", *model)} == _entry(spec, model)
        and spec.column in where
        and all(a in tokens for a in arrays)
    )


def score_run(
    lm: LM,
    path: Path | str,
    specs: Sequence[MetricSpec],
    batch_tokens: int = 4096,
    chunk_rows: int | None = None,
    show_progress: bool = True,
    cluster=None,
    max_tokens: int | None = None,
) -> pd.DataFrame:
    """Score the run folder ``path`` in place (see the module docstring); returns its traces.
    ``max_tokens`` scores each trace's first N generated tokens only (recorded with each
    column as ``max_tokens``). Scores are reused only when made with the same metric,
    parameters, weights, dtype and ``max_tokens``.
    With ``cluster`` (:class:`thinkscope.cluster.Cluster`) Ray workers score the batches, each
    loading the model from ``lm.spec``, as the driver loaded it."""
    check_applicable(lm, specs)  # before anything is read or written
    run = Run.open(path)
    traces = run.traces()
    scores_path, tokens_path = run.path / "scores.json", run.path / "token_metrics.parquet"
    record = json.loads(scores_path.read_text()) if scores_path.is_file() else {}
    tokens = pd.read_parquet(tokens_path) if tokens_path.is_file() else traces[KEYS].copy()
    if list(tokens.columns[:2]) != KEYS or not tokens[KEYS].equals(traces[KEYS]):
        tokens = traces[KEYS].copy()  # the traces changed under an old file: start it afresh
    model = {**model_key(lm), "max_tokens": max_tokens}
    todo = [s for s in specs if not _is_done(s, model, record, traces, tokens)]
    log = run.logger()
    if not todo:
        log.info(
            "score: %s already scored with %s; nothing to do", [s.column for s in specs], lm.name
        )
        return traces
    job = hashlib.sha256(
        json.dumps(
            [[_entry(s, model) for s in todo], batch_tokens, len(traces)], sort_keys=True
        ).encode()
    ).hexdigest()[:12]
    log.info("score: %s with %s (job %s)", [s.column for s in todo], lm.name, job)
    shard_dir = run.path / "scoring" / job
    if cluster is not None:
        from thinkscope.models.spec import ModelSpec
        from thinkscope.scoring.ray import score_shards

        check_tokenizer(lm, traces)
        batches = plan_batches(first_tokens(traces, max_tokens), batch_tokens)
        spec = lm.spec or ModelSpec(model=lm.name)  # a wrapped model: workers load it by name
        score_shards(
            cluster,
            spec,
            run.traces_path,
            batches,
            todo,
            chunk_rows,
            shard_dir,
            show_progress,
            max_tokens,
        )
    scores = score_frame(
        lm, traces, todo, batch_tokens, chunk_rows, shard_dir, show_progress, max_tokens
    )
    stamp = now()
    for spec in todo:
        kind = "columns" if spec.metric.scalar else "vectors"
        arrays = [spec.array_name(a) for a in spec.metric.arrays]
        target = traces if spec.metric.scalar else tokens
        target[spec.column] = (
            scores[spec.column].to_numpy() if spec.metric.scalar else scores[spec.column]
        )
        for array, uses in spec.metric.arrays.items():  # each array with the params it uses
            name = spec.array_name(array)
            tokens[name] = scores[name]
            params = {k: spec.params[k] for k in uses}
            entry = {**_entry(spec, model), "params": params, "scored_at": stamp}
            record.setdefault("arrays", {})[name] = entry
        record.setdefault(kind, {})[spec.column] = {
            **_entry(spec, model),
            "arrays": arrays,
            "scored_at": stamp,
            **({"calibration": spec.metric.calibration(lm)} if spec.metric.calibration else {}),
            **({"layers": spec.layers(lm)} if spec.metric.requires else {}),
        }
    record.update(**model, n_layers=lm.n_layers, vocab_size=lm.vocab_size)
    write_parquet(tokens_path, tokens)
    run.write_traces(traces)
    write_json(scores_path, record)
    shutil.rmtree(shard_dir, ignore_errors=True)
    if run.path.joinpath("scoring").is_dir() and not any(run.path.joinpath("scoring").iterdir()):
        run.path.joinpath("scoring").rmdir()
    config = {"metrics": [s.column for s in todo], "batch_tokens": batch_tokens, **model}
    means = {s.column: float(traces[s.column].mean()) for s in todo if s.metric.scalar}
    add_stage(run.path, "score", config, {f"mean_{k}": v for k, v in means.items()}, stamp)
    log.info("score: wrote %s", [s.column for s in todo])
    return traces


def score(
    lm: LM,
    traces: Run | str | Path | pd.DataFrame | Sequence[Trace],
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    batch_tokens: int = 4096,
    chunk_rows: int | None = None,
    show_progress: bool = True,
) -> pd.DataFrame:
    """Score ``traces``: a run folder (path or :class:`Run`, scored in place, resumable), a
    traces DataFrame or a list of :class:`Trace` (returns a copy with the scalar columns).

    >>> frame = thinkscope.score(lm, "runs/demo", metrics=["dtr", "confidence"])
    """
    specs = parse_metrics(metrics)
    if isinstance(traces, Run | str | Path):
        return score_run(
            lm, getattr(traces, "path", traces), specs, batch_tokens, chunk_rows, show_progress
        )
    frame = (
        pd.DataFrame([t.row() for t in traces]) if not isinstance(traces, pd.DataFrame) else traces
    )
    scores = score_frame(lm, frame, specs, batch_tokens, chunk_rows, None, show_progress)
    out = frame.copy()
    for spec in specs:
        if spec.metric.scalar:
            out[spec.column] = scores[spec.column].to_numpy()
    return out


__all__ = [
    "check_tokenizer",
    "first_tokens",
    "score",
    "score_batch",
    "score_frame",
    "score_run",
]
