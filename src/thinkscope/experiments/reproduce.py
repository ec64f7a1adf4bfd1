"""``thinkscope runs reproduce RUN --out DIR``: re-run a run from its recorded config and diff.

A generate run is generated again from the config its header records (paths absolute; else
from its ``config.yaml``): the same model spec (loading options, the dtype used, and the
weights, checked by their identity) and, when the original was scored, scored with the same
metrics, parameters and model (``scores.json``). The diff compares every sample (token ids,
completion, prediction, correctness, keyed by problem and sample) and every scored scalar
column. Written to ``DIR/reproduce.json`` (atomically)::

    {"original", "reproduction", "identical", "samples": {"n", "missing", "extra",
     "differing": {column: count}}, "metrics": {column: {"max_abs_diff", "differing"}}}

Any other kind is rerun by the CLI (``thinkscope.cli.rerun``) and compared file by file with
:func:`compare_folders`.

On CPU both runs give identical tokens and metric values: generation draws each sample from
its own seeded stream and scoring is deterministic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from thinkscope.core.atomic import write_json
from thinkscope.core.errors import UserError
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.metrics import spec
from thinkscope.models import load_model
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run
from thinkscope.runstore.header import HEADER

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
    header = source.path / HEADER
    stored = json.loads(header.read_text())["config"] if header.is_file() else source.config
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


#: Files two runs of the same work differ in by design: header, environment, log, timing.
SKIPPED = {"run.json", "env.json", "log.txt", "timing.json", "reproduce.json"}
#: The files compared, by suffix (figures, pages and pickled checkpoints are not).
DATA = (".json", ".jsonl", ".yaml", ".csv", ".parquet", ".npy", ".safetensors")
#: Keys (json, yaml) and columns (tables) that measure time, not results (``*_s``: seconds).
VOLATILE = re.compile(r"wall|time|timing|_s$|per_second|_at$|^created$|date|elapsed")
#: A date in a file name (lm-eval's ``results_<date>.json``).
DATED = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:\-]+(\.\d+)?")


def data_files(folder: Path) -> dict[str, Path]:
    """The data files under ``folder`` by relative path (a date in a name as ``<date>``)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        hidden = any(part.startswith(".") for part in relative.parts)
        if path.is_file() and path.suffix in DATA and path.name not in SKIPPED and not hidden:
            files[DATED.sub("<date>", relative.as_posix())] = path
    return files


def _plain(value, folder: str):
    """``value`` without time-valued keys, with the run folder's own path as ``<run>``."""
    if isinstance(value, dict):
        return {k: _plain(v, folder) for k, v in value.items() if not VOLATILE.search(str(k))}
    if isinstance(value, list | tuple):
        return [_plain(v, folder) for v in value]
    if isinstance(value, str):
        return value.replace(folder, "<run>")
    return value


def _load(path: Path, folder: Path):
    """A data file as plain values (tables as ``{column: values}``, arrays as numpy)."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {k: v.float().numpy() for k, v in load_file(path).items()}
    if path.suffix in (".csv", ".parquet"):
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        value = {str(c): frame[c].tolist() for c in frame.columns}
    elif path.suffix == ".jsonl":
        value = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif path.suffix == ".yaml":
        value = yaml.safe_load(path.read_text())
    else:
        value = json.loads(path.read_text())
    return _plain(value, str(folder.resolve()))


def _numeric(value) -> np.ndarray | None:
    """``value`` as a float64 array when it is a rectangular array of numbers."""
    try:
        array = np.asarray(value)
    except ValueError:  # ragged
        return None
    return array.astype(np.float64) if array.dtype.kind in "biuf" else None


def _diff(a, b) -> tuple[int, float]:
    """``(differing values, max |difference| of the numeric ones)`` between two plain values;
    a missing key, a length or shape mismatch, or a NaN against a number counts as inf."""
    if isinstance(a, dict) and isinstance(b, dict):
        parts = [_diff(a[k], b[k]) if k in a and k in b else (1, np.inf) for k in a.keys() | b]
    elif isinstance(a, np.ndarray | list | tuple) and isinstance(b, np.ndarray | list | tuple):
        x, y = _numeric(a), _numeric(b)
        if x is not None and y is not None and x.shape == y.shape:
            delta = np.where(np.isnan(x) & np.isnan(y), 0.0, np.abs(x - y))
            delta[np.isnan(x) ^ np.isnan(y)] = np.inf
            return int((delta > 0).sum()), float(delta.max(initial=0.0))
        scalar = any(isinstance(v, np.ndarray) and v.ndim == 0 for v in (a, b))
        if scalar or len(a) != len(b):
            return 1, np.inf
        parts = [_diff(x, y) for x, y in zip(a, b, strict=True)]
    elif isinstance(a, int | float | np.number) and isinstance(b, int | float | np.number):
        x, y = float(a), float(b)
        if x == y or (np.isnan(x) and np.isnan(y)):
            return 0, 0.0
        return 1, abs(x - y) if not (np.isnan(x) or np.isnan(y)) else np.inf
    else:
        return (0, 0.0) if a == b else (1, np.inf)
    return sum(n for n, _ in parts), max((d for _, d in parts), default=0.0)


def compare_folders(original: Path | str, new: Path | str) -> dict:
    """Every data file of two run folders compared, leaving out what differs by design
    (:data:`SKIPPED` files, :data:`VOLATILE` keys and columns, the folders' own paths):
    ``{"original", "reproduction", "identical", "files": {name: {"status", "differing",
    "max_abs_diff"}}}``, status ``identical``, ``different``, ``missing`` or ``extra``."""
    original, new = Path(original), Path(new)
    files_a, files_b = data_files(original), data_files(new)
    files = {}
    for name in sorted(files_a.keys() | files_b.keys()):
        if name not in files_b or name not in files_a:
            files[name] = {"status": "missing" if name in files_a else "extra"}
            continue
        differing, delta = _diff(_load(files_a[name], original), _load(files_b[name], new))
        status = "identical" if differing == 0 else "different"
        files[name] = {"status": status, "differing": differing, "max_abs_diff": delta}
    return {
        "original": str(original.resolve()),
        "reproduction": str(new.resolve()),
        "identical": all(f["status"] == "identical" for f in files.values()),
        "files": files,
    }
