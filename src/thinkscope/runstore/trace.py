"""A trace: one sampled completion of one problem, with its per-token record and its grade.

Traces live as rows of ``traces.parquet`` in a run folder; :data:`TRACE_COLUMNS` is the
schema every stage can rely on (scoring and analysis add their own columns beside it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import pandas as pd


@dataclass
class Trace:
    """One sample. ``token_ids``/``token_logprobs`` cover generated tokens only (EOS included)."""

    problem_id: str
    sample_idx: int
    question: str
    gold: str
    prompt: str
    completion: str
    prompt_ids: list[int]
    token_ids: list[int]
    token_logprobs: list[float]
    finish_reason: str
    pred: str | None
    correct: bool
    sample_seed: int
    top_ids: list[list[int]] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)
    step_pmax: list[float] = field(default_factory=list)  # per-step logs (--log-steps),
    step_rank: list[int] = field(default_factory=list)  # see generate.sampler.Completion
    step_prob: list[float] = field(default_factory=list)
    step_kept: list[int] = field(default_factory=list)

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def row(self) -> dict:
        return {**asdict(self), "n_tokens": self.n_tokens}


TRACE_COLUMNS = [f.name for f in fields(Trace)] + ["n_tokens"]


def traces_from_frame(frame: pd.DataFrame) -> list[Trace]:
    """Rebuild :class:`Trace` objects from a traces table (extra columns are ignored)."""
    names = [f.name for f in fields(Trace)]
    return [
        Trace(**{name: _plain(row[name]) for name in names if name in row})
        for row in frame.to_dict("records")
    ]


def _plain(value):
    """Parquet gives numpy arrays for list columns; traces hold plain lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
