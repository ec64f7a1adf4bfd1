"""``thinkscope runs reproduce RUN --out DIR``: re-run a run from its recorded config and diff.

The new run is generated from the original's ``config.yaml`` (the same model spec: loading
options, the dtype used, and the weights, checked by their identity) and, when the original
was scored, scored with the same metrics, parameters and model (``scores.json``). The diff compares
every sample (token ids, completion, prediction, correctness, keyed by problem and sample) and
every scored scalar column. Written to ``DIR/reproduce.json`` (atomically)::

    {"original", "reproduction", "identical", "samples": {"n", "missing", "extra",
     "differing": {column: count}}, "metrics": {column: {"max_abs_diff", "differing"}}}

On CPU both runs give identical tokens and metric values: generation draws each sample from
its own seeded stream and scoring is deterministic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from thinkscope.core.atomic import write_json
from thinkscope.core.errors import UserError
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.metrics import spec
from thinkscope.models import load_model
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run

KEYS = ["problem_id", "sample_idx"]
SAMPLE_COLUMNS = ("token_ids", "completion", "pred", "correct", "finish_reason")


@dataclass
class Reproduction:
    original: Path
    reproduction: Path
    report: dict

    @property
    def identical(self) -> bool:
        return bool(self.report["identical"])


def _same(a, b) -> bool:
    if isinstance(a, list | np.ndarray) or isinstance(b, list | np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return (a == b) or (pd.isna(a) and pd.isna(b))


def diff_runs(original: pd.DataFrame, new: pd.DataFrame, columns: list[str]) -> dict:
    """Per-sample and per-metric differences of two traces frames (keyed by problem/sample)."""
    merged = original.merge(new, on=KEYS, how="outer", suffixes=("_a", "_b"), indicator=True)
    both = merged[merged["_merge"] == "both"]
    samples = {
        "n": len(both),
        "missing": int((merged["_merge"] == "left_only").sum()),
        "extra": int((merged["_merge"] == "right_only").sum()),
        "differing": {
            c: int(
                sum(not _same(a, b) for a, b in zip(both[f"{c}_a"], both[f"{c}_b"], strict=True))
            )
            for c in SAMPLE_COLUMNS
            if f"{c}_a" in both and f"{c}_b" in both
        },
    }
    metrics = {}
    for column in columns:
        a = both[f"{column}_a"].astype(float).to_numpy()
        b = both[f"{column}_b"].astype(float).to_numpy()
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        delta = np.where(nan_a & nan_b, 0.0, np.abs(a - b))
        delta[nan_a ^ nan_b] = np.inf
        metrics[column] = {
            "max_abs_diff": float(delta.max()) if len(delta) else 0.0,
            "differing": int((delta > 0).sum()),
        }
    identical = (
        samples["missing"] == samples["extra"] == 0
        and not any(samples["differing"].values())
        and all(m["differing"] == 0 for m in metrics.values())
    )
    return {"identical": identical, "samples": samples, "metrics": metrics}


def _scorer(record: dict, config: GenerateConfig, lm):
    """The model ``scores.json`` records (name, weights, dtype): ``lm`` when it is that one."""
    from thinkscope.scoring.stage import model_key

    recorded = {k: record[k] for k in ("model", "weights", "dtype") if k in record}
    if all(model_key(lm).get(k) == v for k, v in recorded.items()):
        return lm
    own = ModelSpec.of(config).loading() if recorded.get("model") == config.model else {}
    return load_model(ModelSpec.of({**own, **recorded}))


def reproduce(
    run: Path | str, out: Path | str, show_progress: bool = True, **overrides
) -> Reproduction:
    """Generate (and score) ``out`` from ``run``'s recorded config; diff and write the report.

    The model is the recorded one: the same loading options and dtype, and the same weights
    (a :class:`UserError` if the weights' identity differs now). ``overrides`` change model
    options on purpose (``dtype="float32"``); another model or revision drops the recorded
    identity."""
    from thinkscope.scoring import score_run

    source = Run.open(run)
    stored = source.config
    if {"model", "revision"} & overrides.keys():
        stored.pop("weights", None)
    config = GenerateConfig.parse(**{**stored, **overrides})
    scores_path = source.path / "scores.json"
    record = json.loads(scores_path.read_text()) if scores_path.is_file() else {}
    entries = record.get("columns", {})
    specs = [spec(e["metric"], **e.get("params", {})) for e in entries.values()]
    if Path(out).resolve() == source.path.resolve():
        raise UserError("--out must be a new folder, not the run being reproduced")
    lm = load_model(ModelSpec.of(config))
    new = generate_run(config, out, lm=lm, show_progress=show_progress)
    if specs:
        score_run(_scorer(record, config, lm), new.path, specs, show_progress=show_progress)
    report = diff_runs(source.traces(), new.traces(), [s.column for s in specs])
    report = {"original": str(source.path), "reproduction": str(new.path), **report}
    write_json(new.path / "reproduce.json", report)
    return Reproduction(source.path, new.path, report)
