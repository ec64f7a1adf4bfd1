"""Majority and weighted votes over extracted answers.

Answers are compared as :func:`thinkscope.tasks.answers.grade` normalises them (its
``pred``: ``"8.0"`` and ``"8"`` are one answer). ``None`` (no answer found) abstains.
"""

from __future__ import annotations

from collections.abc import Sequence


def vote(preds: Sequence[str | None], weights: Sequence[float] | None = None) -> str | None:
    """The answer with the largest total weight (a plain count when ``weights`` is None).

    Ties go to the answer that appears first; the order of samples is random, so this is a
    reproducible random tie-break. ``None`` when no sample gave an answer.

    >>> vote(["8", "9", "8", None])
    '8'
    >>> vote(["8", "9"], [1.0, 2.5])
    '9'
    """
    if weights is None:
        weights = [1.0] * len(preds)
    if len(weights) != len(preds):
        raise ValueError("need one weight per answer")
    totals: dict[str, float] = {}
    for pred, weight in zip(preds, weights, strict=True):
        if pred is not None:
            totals[pred] = totals.get(pred, 0.0) + float(weight)
    return max(totals, key=totals.__getitem__) if totals else None


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores, ascending; ties go to the lower index.

    >>> top_k([0.2, 0.9, 0.5, 0.9], 2)
    [1, 3]
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])
