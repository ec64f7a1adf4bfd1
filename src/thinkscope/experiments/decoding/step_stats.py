"""What per-step logs say about correctness (after "Sample Smart, Not Hard").

Every function takes a run's traces with the ``--log-steps`` columns (``step_pmax``: the top
probability at each step; ``step_rank``: the sampled token's 1-based rank under the model's
unprocessed distribution) and the ``correct``/``pred`` columns, and returns a small table.
Counts of 10 or more share the row ``10+``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from thinkscope.core.errors import UserError
from thinkscope.select.vote import vote

RANK_BINS = (  # (label, lo, hi): lo <= mean rank < hi
    ("1", 1.0, 1.0 + 1e-9),
    ("(1, 1.05)", 1.0 + 1e-9, 1.05),
    ("[1.05, 1.1)", 1.05, 1.1),
    ("[1.1, 1.25)", 1.1, 1.25),
    ("[1.25, 1.5)", 1.25, 1.5),
    ("[1.5, 2)", 1.5, 2.0),
    ("2+", 2.0, np.inf),
)


def require_steps(frame: pd.DataFrame, run: object = "the run") -> None:
    """Raise unless every sample of ``frame`` has a step log per generated token (a run
    generated without ``--log-steps`` has empty logs)."""
    logged = {"step_pmax", "step_rank"} <= set(frame.columns) and not frame.empty
    if logged:
        steps = frame["step_pmax"].map(len)
        tokens = frame["token_ids"].map(len) if "token_ids" in frame else steps
        logged = bool((steps == tokens).all() and (frame["step_rank"].map(len) == steps).all())
        logged = logged and bool(steps.sum())
    if not logged:
        raise UserError(f"{run} has no step logs; generate it with --log-steps")


def low_confidence_counts(frame: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
    """Per sample, the number of steps whose top probability is below ``threshold``. ``[N]``"""
    return np.array([int((np.asarray(p) < threshold).sum()) for p in frame["step_pmax"]])


def off_top_counts(frame: pd.DataFrame) -> np.ndarray:
    """Per sample, the number of sampled tokens that were not the model's top-1. ``[N]``"""
    return np.array([int((np.asarray(r) > 1).sum()) for r in frame["step_rank"]])


def mean_ranks(frame: pd.DataFrame) -> np.ndarray:
    """Per sample, the mean rank of its sampled tokens (NaN for an empty completion). ``[N]``"""
    return np.array([float(np.mean(r)) if len(r) else np.nan for r in frame["step_rank"]])


def accuracy_by_count(counts: np.ndarray, correct: np.ndarray, cap: int = 10) -> pd.DataFrame:
    """Accuracy of the samples with exactly 0, 1, ..., cap-1 and cap+ counted steps."""
    labels = [str(k) for k in range(cap)] + [f"{cap}+"]
    which = np.minimum(counts, cap)
    rows = [
        (label, int((which == k).sum()), _mean(correct[which == k]))
        for k, label in enumerate(labels)
    ]
    return pd.DataFrame(rows, columns=["count", "n", "accuracy"])


def accuracy_by_mean_rank(ranks: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """Accuracy by bins of mean sampled-token rank (:data:`RANK_BINS`; NaN ranks fall out)."""
    rows = []
    for label, lo, hi in RANK_BINS:
        inside = (ranks >= lo) & (ranks < hi)
        rows.append((label, int(inside.sum()), _mean(correct[inside])))
    return pd.DataFrame(rows, columns=["mean_rank", "n", "accuracy"])


def voted_correct(group: pd.DataFrame) -> float:
    """1.0 if the majority answer of ``group``'s samples is correct, else 0.0 (no answer: 0)."""
    return _vote_is_correct(list(group["pred"]), list(group["correct"]))


def _vote_is_correct(preds: list, correct: list) -> float:
    winner = vote(preds)
    return 0.0 if winner is None else float(correct[preds.index(winner)])


def conditioned_vote(frame: pd.DataFrame, counts: np.ndarray) -> pd.DataFrame:
    """Majority vote over all samples of a question against a vote over its confident half.

    The confident half is the samples whose low-confidence count is at most the question's
    median. Returns one row per question: ``maj_all``, ``maj_confident``, ``n``, ``n_confident``.
    """
    frame = frame.assign(_low=counts)
    rows = []
    for pid, group in frame.groupby("problem_id", sort=False):
        confident = group[group["_low"] <= group["_low"].median()]
        rows.append(
            (pid, len(group), len(confident), voted_correct(group), voted_correct(confident))
        )
    return pd.DataFrame(
        rows, columns=["problem_id", "n", "n_confident", "maj_all", "maj_confident"]
    )


def maj_at_k(frame: pd.DataFrame, ks: list[int], draws: int = 50, seed: int = 0) -> pd.DataFrame:
    """Majority-vote accuracy with k samples per question, mean over ``draws`` random subsets."""
    rng = np.random.default_rng(seed)
    groups = [
        (np.asarray(g["pred"], dtype=object), np.asarray(g["correct"], dtype=float))
        for _, g in frame.groupby("problem_id", sort=False)
    ]
    rows = []
    for k in ks:
        scores = [
            _vote_is_correct(list(preds[pick]), list(correct[pick]))
            for preds, correct in groups
            if len(preds) >= k
            for pick in (rng.choice(len(preds), size=k, replace=False) for _ in range(draws))
        ]
        rows.append((k, _mean(np.asarray(scores))))
    return pd.DataFrame(rows, columns=["k", "maj_at_k"])


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
