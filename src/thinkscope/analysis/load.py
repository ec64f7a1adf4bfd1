"""A scored run as the analysis reads it: traces, metric columns and per-token arrays.

``thinkscope score`` adds one float column per scalar metric to ``traces.parquet`` and lists
them in ``scores.json`` under ``"columns"`` (``{column: {"metric", "params", ...}}``; a flat
``{column: {...}}`` mapping is read too). ``token_metrics.parquet`` holds per-token lists keyed
by problem_id, sample_idx: ``settling_depth`` ``[T]`` (``settling_depth[g=0.6]`` for other
parameters) and, when the full lens profile was scored, ``jsd_profile`` (or ``jsd``)
``[T][L]`` in nats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thinkscope.core.errors import UserError
from thinkscope.lens import ln_base
from thinkscope.metrics.dtr import DTR_DEFAULTS, deep_layer
from thinkscope.runstore.folder import Run

KEYS = ["problem_id", "sample_idx"]
JSD_COLUMNS = ("jsd_profile", "jsd")


@dataclass
class ScoredRun:
    """A finished run with metric columns; ``metrics`` maps each column to its scores.json entry."""

    run: Run
    traces: pd.DataFrame
    metrics: dict[str, dict]
    record: dict

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def columns(self) -> list[str]:
        return list(self.metrics)

    @property
    def correct(self) -> np.ndarray:
        return self.traces["correct"].fillna(False).astype(bool).to_numpy()

    @property
    def dtr_column(self) -> str | None:
        """``dtr`` if scored, else the first column of the DTR metric (e.g. ``dtr[g=0.6]``)."""
        if "dtr" in self.metrics:
            return "dtr"
        return next((c for c, spec in self.metrics.items() if spec.get("metric") == "dtr"), None)

    @property
    def dtr_params(self) -> dict:
        """The DTR column's parameters, defaults filled in (g, rho, base)."""
        column = self.dtr_column
        return {**DTR_DEFAULTS, **(self.metrics[column].get("params", {}) if column else {})}

    @property
    def g_nats(self) -> float:
        return float(self.dtr_params["g"]) * ln_base(self.dtr_params["base"])

    def deep_layer(self, n_layers: int) -> int:
        return deep_layer(n_layers, float(self.dtr_params["rho"]))


def load_scored(path: Path | str) -> ScoredRun:
    """Open the run at ``path`` and check that it has been scored."""
    run = Run.open(path)
    scores_path = run.path / "scores.json"
    record = json.loads(scores_path.read_text()) if scores_path.is_file() else {}
    listed = record.get("columns", record)
    metrics = {c: e for c, e in listed.items() if isinstance(e, dict) and "metric" in e}
    if not metrics:
        raise UserError(
            f"{run.path} has no metric columns; run `thinkscope score {run.path}` first"
        )
    traces = run.traces()
    missing = [c for c in metrics if c not in traces.columns]
    if missing:
        raise UserError(
            f"{scores_path} lists {missing} but traces.parquet lacks them; "
            f"run `thinkscope score {run.path}` again"
        )
    if traces.empty:
        raise UserError(f"{run.path} holds no traces to analyse")
    return ScoredRun(run, traces.reset_index(drop=True), metrics, record)


@dataclass
class TokenMetrics:
    """Per-token arrays of every trace, flattened in traces order.

    Trace ``i`` owns tokens ``offsets[i]:offsets[i + 1]`` of ``settling`` ``[N]`` (1-indexed
    layer) and ``jsd`` ``[N, L]`` (float32, nats; None when the run has no JSD profile).
    Traces absent from the file have no tokens. ``n_layers`` is None when neither a JSD
    profile nor ``scores.json`` records it (a run scored by an older thinkscope).
    """

    offsets: np.ndarray
    settling: np.ndarray
    jsd: np.ndarray | None
    n_layers: int | None

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def trace_means(self) -> np.ndarray:
        """``[N, L]`` float64: each trace's mean JSD per layer (NaN for a trace without
        tokens). Needs the JSD profile."""
        cum = np.concatenate([np.zeros((1, self.n_layers)), np.cumsum(self.jsd, 0, dtype=float)])
        lengths = self.lengths()
        with np.errstate(invalid="ignore", divide="ignore"):
            return (cum[self.offsets[1:]] - cum[self.offsets[:-1]]) / lengths[:, None]

    def of(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Settling depths ``[T]`` and JSD ``[T, L]`` (or None) of trace ``i``."""
        span = slice(self.offsets[i], self.offsets[i + 1])
        return self.settling[span], None if self.jsd is None else self.jsd[span]


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Per-row list lengths (null = 0) and the concatenated list values."""
    array = column.combine_chunks()
    return pc.fill_null(pc.list_value_length(array), 0).to_numpy(), array.flatten()


def _depth_column(names: list[str], dtr_column: str | None) -> str:
    """The settling-depth array of the DTR column's parameters (``settling_depth[g=0.6]``)."""
    suffix = dtr_column[3:] if dtr_column else ""
    for name in (f"settling_depth{suffix}", "settling_depth"):
        if name in names:
            return name
    found = [n for n in names if n.startswith("settling_depth")]
    if not found:
        raise UserError("token_metrics.parquet has no settling_depth; re-run `thinkscope score`")
    return found[0]


def load_token_metrics(scored: ScoredRun) -> TokenMetrics | None:
    """``token_metrics.parquet`` aligned with ``scored.traces``; None if the file is absent.

    The layer count L is the JSD profile's width, else ``n_layers`` in scores.json, else None
    (never guessed: the deepest settling layer seen can undercount L).
    """
    path = scored.path / "token_metrics.parquet"
    if not path.is_file():
        return None
    names = pq.read_schema(path).names
    depth_column = _depth_column(names, scored.dtr_column)
    jsd_column = next((c for c in JSD_COLUMNS if c in names), None)
    table = pq.read_table(
        path, columns=[*KEYS, depth_column, *([jsd_column] if jsd_column else [])]
    )
    depth_len, depth = _flat(table.column(depth_column))
    depth = depth.to_numpy(zero_copy_only=False).astype(np.int16)
    jsd, n_layers = None, None
    if jsd_column:
        jsd_len, per_token = _flat(table.column(jsd_column))
        layer_len, values = _flat(pa.chunked_array([per_token]))
        if len(set(layer_len.tolist())) > 1 or not np.array_equal(depth_len, jsd_len):
            raise UserError(f"{path} is inconsistent (ragged layers or tokens); re-run scoring")
        n_layers = int(layer_len[0]) if len(layer_len) else 1
        jsd = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, n_layers)
    elif "n_layers" in scored.record:
        n_layers = int(scored.record["n_layers"])

    keys = table.select(KEYS).to_pandas()
    row = pd.MultiIndex.from_frame(keys).get_indexer(pd.MultiIndex.from_frame(scored.traces[KEYS]))
    starts = np.concatenate([[0], np.cumsum(depth_len)])
    lengths = np.where(row >= 0, depth_len[row], 0)
    take = np.concatenate(
        [np.arange(starts[r], starts[r + 1]) for r in row if r >= 0] or [np.zeros(0, int)]
    )
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return TokenMetrics(offsets, depth[take], None if jsd is None else jsd[take], n_layers)
