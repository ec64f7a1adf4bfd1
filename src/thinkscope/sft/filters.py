"""Dataset filters: which graded traces go into an SFT dataset, counted one filter at a time.

Filters run in a fixed order, each on what the previous ones kept::

    --require-correct  --require-answer-tag  --truncated exclude  --min-tokens  --max-tokens
    --dedupe  --min-dtr (with --fallback-best-correct)  --keep-per-question

A truncated trace (cut at ``--max-new-tokens``, ``finish_reason`` "length") ends mid-thought:
trained with an end-of-sequence token after it, a model learns to stop mid-thought. So the
policy ``truncated`` is explicit: ``exclude`` (the default) drops them; ``keep`` keeps them,
marked ``"truncated": true`` in the records, and training appends no end-of-sequence to them.

Ranking ("best") is by DTR, highest first, then by mean token log-probability: the scorer's
``logprob`` column when the run has one, else the mean of the sampled ``token_logprobs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from thinkscope.core.errors import UserError
from thinkscope.sft.filter_spec import DatasetFilters

EXCLUDE_TRUNCATED = "--truncated exclude"
_ANSWER_TAG = re.compile(r"<answer>.*?\S.*?</answer>|\\boxed\s*\{", re.S)


def has_answer_tag(response: str) -> bool:
    """A closed, non-empty ``<answer>...</answer>`` tag or a ``\\boxed{`` in ``response``."""
    return bool(_ANSWER_TAG.search(response))


@dataclass(frozen=True)
class FilterStep:
    """One filter's effect: rows before it, rows it kept, rows it restored (fallback)."""

    flag: str
    before: int
    kept: int
    restored: int = 0

    @property
    def dropped(self) -> int:
        return self.before - self.kept


def truncation(filters: DatasetFilters, steps: list[FilterStep], kept: pd.DataFrame) -> dict:
    """The truncated-trace policy and how many traces it excluded (or kept)."""
    if filters.truncated == "keep":
        return {"policy": "keep", "kept": int(truncated(kept).sum())}
    excluded = sum(s.dropped for s in steps if s.flag == EXCLUDE_TRUNCATED)
    return {"policy": "exclude", "excluded": excluded}


def truncated(frame: pd.DataFrame) -> pd.Series:
    """Which rows were cut at ``--max-new-tokens`` (``finish_reason`` "length")."""
    return frame["finish_reason"] == "length"


def rank(frame: pd.DataFrame, dtr_column: str | None) -> pd.DataFrame:
    """``frame`` sorted best first within each question (DTR, then log-prob; NaN last)."""
    keys = ([dtr_column] if dtr_column else []) + ["_logprob"]
    ordered = frame.sort_values(keys, ascending=False, na_position="last", kind="stable")
    return ordered


def check_scored(filters: DatasetFilters, scored: bool) -> None:
    """Raise if ``filters`` need DTR and the run has no DTR column."""
    if filters.needs_dtr and not scored:
        raise UserError(
            f"--min-dtr needs a {filters.dtr_column!r} column: score the run first "
            "(`thinkscope score RUN --metrics dtr`) or drop --min-dtr"
        )


def apply_filters(
    frame: pd.DataFrame, filters: DatasetFilters, scored: bool
) -> tuple[pd.DataFrame, list[FilterStep]]:
    """Apply ``filters`` to graded rows; return the kept rows (input order) and one step each.

    ``frame`` needs ``problem_id, prompt, response, is_correct, has_tag, finish_reason,
    n_tokens, _logprob`` (and ``filters.dtr_column`` when ``scored``). Raises
    :class:`UserError` naming the filter that leaves nothing.
    """
    check_scored(filters, scored)
    dtr = filters.dtr_column if scored else None
    lo, hi = filters.min_tokens, filters.max_tokens
    masks = [
        ("--require-correct", filters.require_correct, lambda f: f["is_correct"]),
        ("--require-answer-tag", filters.require_answer_tag, lambda f: f["has_tag"]),
        (EXCLUDE_TRUNCATED, filters.truncated == "exclude", lambda f: ~truncated(f)),
        ("--min-tokens", lo is not None, lambda f: f["n_tokens"] >= lo),
        ("--max-tokens", hi is not None, lambda f: f["n_tokens"] <= hi),
        ("--dedupe", filters.dedupe, lambda f: ~f.duplicated(["prompt", "response"])),
    ]
    steps: list[FilterStep] = []
    for flag, on, mask in masks:
        if on:
            before = len(frame)
            frame = frame[mask(frame).to_numpy(dtype=bool)]
            steps.append(_checked(FilterStep(flag, before, len(frame))))
    if filters.min_dtr is not None:
        frame, step = _min_dtr(frame, filters, dtr)
        steps.append(_checked(step))
    if filters.keep_per_question is not None:
        before = len(frame)
        best = rank(frame, dtr).groupby("problem_id", sort=False).head(filters.keep_per_question)
        frame = frame.loc[frame.index.isin(best.index)]
        steps.append(_checked(FilterStep("--keep-per-question", before, len(frame))))
    return frame, steps


def _min_dtr(
    frame: pd.DataFrame, filters: DatasetFilters, dtr: str
) -> tuple[pd.DataFrame, FilterStep]:
    """Rows with DTR >= min; with the fallback, a question left empty keeps its best correct."""
    passing = (frame[dtr] >= filters.min_dtr).to_numpy(dtype=bool)
    keep = pd.Series(passing, index=frame.index)
    restored = 0
    if filters.fallback_best_correct:
        covered = set(frame.loc[passing, "problem_id"])
        orphans = frame[~frame["problem_id"].isin(covered) & frame["is_correct"]]
        best = rank(orphans, dtr).groupby("problem_id", sort=False).head(1)
        keep[best.index] = True
        restored = len(best)
    return frame[keep.to_numpy()], FilterStep("--min-dtr", len(frame), int(keep.sum()), restored)


def _checked(step: FilterStep) -> FilterStep:
    if step.kept == 0:
        fix = "pass --truncated keep" if step.flag == EXCLUDE_TRUNCATED else "relax it or drop it"
        raise UserError(f"no traces left after {step.flag}: it dropped all {step.before}; {fix}")
    return step
