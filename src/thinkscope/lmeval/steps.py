"""Per-step rank logs on the lm-eval path: written beside lm-eval's samples file by
``thinkscope eval`` (``log_steps=true`` in the thinkscope model's ``model_args``), read back
with that samples file by ``thinkscope decoding-report --samples``.

Beside ``samples_<task>_<date>.jsonl``, one line per response, in the samples file's order
(by ``doc_id``, then repeat):

- ``steps_<task>_<date>.jsonl``: ``{"doc_id", "repeat", "step_pmax", "step_rank",
  "step_prob", "step_kept"}``, thinkscope's per-step log
  (:class:`~thinkscope.generation.sampler.Completion`);
- ``low_conf_ranks_<task>_<date>.jsonl``: a JSON list of the sampled tokens' ranks at the
  steps whose top probability is below ``low_conf_threshold`` (seed 003's
  ``low_conf_ranks_*.jsonl``);
- ``all_sampled_ranks_<task>_<date>.jsonl``: a JSON list of every sampled token's rank (seed
  003's ``all_sampled_ranks_*.jsonl`` kept only ranks of tokens with probability below 0.1;
  every rank is written here, so any cut can be made later).

This module imports neither lm-eval nor torch, so reading the files needs no ``eval`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from pydantic import Field

from thinkscope.core.atomic import write_text
from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec
from thinkscope.decoding.config import DecodingKnobs

STEP_FIELDS = ("step_pmax", "step_rank", "step_prob", "step_kept")
LOGS = ("steps", "low_conf_ranks", "all_sampled_ranks")


class StepLogArgs(Spec):
    """The thinkscope model's ``model_args`` for the per-step logs."""

    log_steps: bool = DecodingKnobs.model_fields["log_steps"]
    low_conf_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="The low_conf_ranks log keeps the steps whose top probability is below this.",
    )


def step_record(task: str, doc_id: int, repeat: int, completion) -> dict:
    """One response's log line (``completion``: a sampler Completion with step logs)."""
    return {
        "task": task,
        "doc_id": int(doc_id),
        "repeat": int(repeat),
        **{name: list(getattr(completion, name)) for name in STEP_FIELDS},
    }


def write_step_logs(
    records: list[dict], folder: Path, date_id: str, threshold: float
) -> list[Path]:
    """Write the three logs of every task in ``records`` into ``folder``; their paths."""
    written = []
    for task in sorted({r["task"] for r in records}):
        rows = sorted(
            (r for r in records if r["task"] == task), key=lambda r: (r["doc_id"], r["repeat"])
        )
        low = [
            [k for p, k in zip(r["step_pmax"], r["step_rank"], strict=True) if p < threshold]
            for r in rows
        ]
        lines = {
            "steps": [{k: v for k, v in r.items() if k != "task"} for r in rows],
            "low_conf_ranks": low,
            "all_sampled_ranks": [r["step_rank"] for r in rows],
        }
        for name in LOGS:
            path = folder / f"{name}_{task}_{date_id}.jsonl"
            write_text(path, "".join(json.dumps(v) + "\n" for v in lines[name]))
            written.append(path)
    return written


def _jsonl(path: Path, what: str) -> list:
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise UserError(f"{what} {path} is not JSONL: line {err.lineno}: {err.msg}") from None


def read_samples(path: Path | str, filter_name: str | None = None) -> pd.DataFrame:
    """lm-eval's ``samples_*.jsonl`` as one row per response: ``problem_id`` (the doc id),
    ``pred`` (the filtered response), ``correct`` (the sample's first metric, e.g.
    ``exact_match``), ``filter`` and ``metric``. One filter's lines are kept: ``filter_name``,
    or the file's first. Docs answered more than once are refused (lm-eval scores only the
    filtered response of a doc, not each repeat)."""
    path = Path(path)
    lines = _jsonl(path, "--samples")
    if not lines or not all(isinstance(s, dict) for s in lines):
        raise UserError(f"--samples {path} holds no lm-eval samples (one JSON object a line)")
    missing = {"doc_id", "resps", "filtered_resps", "metrics"} - set(lines[0])
    if missing:
        raise UserError(
            f"--samples {path} is not an lm-eval samples file (no {', '.join(sorted(missing))}); "
            "run lm-eval with --log_samples"
        )
    filters = list(dict.fromkeys(s.get("filter", "none") for s in lines))
    chosen = filter_name or filters[0]
    if chosen not in filters:
        raise UserError(f"--filter {chosen!r} is not in {path}; it has {', '.join(filters)}")
    rows = []
    for s in (s for s in lines if s.get("filter", "none") == chosen):
        if len(s["resps"]) != 1 or len(s["resps"][0]) != 1:
            raise UserError(
                f"--samples {path}: doc {s['doc_id']} has several responses; lm-eval scores "
                "only one of them, so per-response correctness is unknown (use repeats=1)"
            )
        metric = next((m for m in s["metrics"] if isinstance(s.get(m), int | float)), None)
        if metric is None:
            raise UserError(f"--samples {path}: doc {s['doc_id']} has no numeric metric")
        pred = s["filtered_resps"][0]
        rows.append((s["doc_id"], str(pred), float(s[metric]), chosen, metric))
    frame = pd.DataFrame(rows, columns=["problem_id", "pred", "correct", "filter", "metric"])
    return frame.sort_values("problem_id", kind="stable").reset_index(drop=True)


def read_rank_log(path: Path | str, samples: pd.DataFrame) -> pd.DataFrame:
    """The rank log ``path`` aligned with ``samples`` (one line per response, in its order):
    thinkscope's ``steps_*.jsonl`` gives ``step_pmax`` and ``step_rank``; a seed-shape file (a
    list of ranks per line) gives ``step_rank`` (the ranks it logged) alone."""
    path = Path(path)
    lines = _jsonl(path, "--ranks")
    if len(lines) != len(samples):
        raise UserError(
            f"--ranks {path} has {len(lines)} lines for {len(samples)} responses in the samples "
            "file; give the rank log written with it"
        )
    if all(isinstance(v, list) and all(isinstance(k, int) for k in v) for v in lines):
        return samples.assign(step_rank=lines)
    if not all(isinstance(v, dict) and {"step_pmax", "step_rank"} <= set(v) for v in lines):
        raise UserError(
            f"--ranks {path}: each line must be a list of ranks or an object with step_pmax "
            "and step_rank"
        )
    docs = [v.get("doc_id", d) for v, d in zip(lines, samples["problem_id"], strict=True)]
    if docs != list(samples["problem_id"]):
        raise UserError(f"--ranks {path} logs other docs than the samples file")
    return samples.assign(
        step_pmax=[v["step_pmax"] for v in lines], step_rank=[v["step_rank"] for v in lines]
    )


def rank_log_beside(samples: Path) -> Path:
    """The ``steps_*.jsonl`` that ``thinkscope eval`` wrote beside ``samples``."""
    return samples.with_name(samples.name.replace("samples_", "steps_", 1))
