"""Majority and weighted votes over extracted answers, grouped by meaning.

Two answers vote together when the grader's own comparison
(:func:`thinkscope.tasks.answers.answers_match`) says they state the same answer: ``"1/2"``,
``"0.5"`` and ``"\\frac{1}{2}"`` are one answer. ``None`` (no answer found) abstains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from thinkscope.tasks.answers import answers_match


@lru_cache(maxsize=65536)
def same_answer(a: str, b: str) -> bool:
    """``answers_match`` either way round (cached: math-verify is slow and votes repeat)."""
    return a == b or answers_match(a, b) or answers_match(b, a)


def answer_classes(
    preds: Sequence[str | None], same: Callable[[str, str], bool] = same_answer
) -> list[int | None]:
    """Class of each answer ``[len(preds)]``: the index of the first answer it matches
    (``None`` for an abstention). Each answer joins the first earlier class whose first
    answer it matches, so the classes do not depend on whether ``same`` is transitive."""
    heads: list[int] = []
    out: list[int | None] = []
    for i, pred in enumerate(preds):
        if pred is None:
            out.append(None)
            continue
        head = next((h for h in heads if same(preds[h], pred)), None)
        if head is None:
            heads.append(head := i)
        out.append(head)
    return out


def vote(
    preds: Sequence[str | None],
    weights: Sequence[float] | None = None,
    same: Callable[[str, str], bool] = same_answer,
) -> str | None:
    """The answer whose class has the largest total weight (a plain count when ``weights``
    is None), given as the class's first answer.

    Ties go to the class that appears first; the order of samples is random, so this is a
    reproducible random tie-break. ``None`` when no sample gave an answer.

    >>> vote(["8", "9", "8", None])
    '8'
    >>> vote(["8", "9"], [1.0, 2.5])
    '9'
    >>> vote(["0.5", "3", "1/2", "3"], [1.0, 1.5, 1.0, 0.2])
    '0.5'
    """
    if weights is None:
        weights = [1.0] * len(preds)
    if len(weights) != len(preds):
        raise ValueError("need one weight per answer")
    totals: dict[int, float] = {}
    for head, weight in zip(answer_classes(preds, same), weights, strict=True):
        if head is not None:
            totals[head] = totals.get(head, 0.0) + float(weight)
    return preds[max(totals, key=totals.__getitem__)] if totals else None


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores, ascending; ties go to the lower index.

    >>> top_k([0.2, 0.9, 0.5, 0.9], 2)
    [1, 3]
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])
