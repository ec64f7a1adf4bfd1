"""The unit of work: one question with its gold answer."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """A question, its gold answer, and anything else the task knows about it.

    ``solution`` is a worked solution used for few-shot examples ("" when the task has none).
    """

    id: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False)
    solution: str = ""
