"""MATH (Hendrycks et al., 2021): competition problems with LaTeX answers.

- ``math``: a bundled fixture of 20 MATH-style problems (algebra, number theory, counting,
  geometry; answers such as ``\\frac{5}{6}``, ``5\\sqrt{2}``, ``[4,\\infty)``), written for
  thinkscope under its Apache-2.0 licence. It is a fixture for offline runs and tests, not the
  MATH dataset.
- ``HuggingFaceH4/MATH-500[:split]``: the 500-problem MATH test subset from the hub, through
  ``datasets`` (online only).

Each problem's ``answer`` is the LaTeX inside the reference solution's ``\\boxed{}``; the
grader (:func:`thinkscope.tasks.answers.grade`) compares it with math-verify, so
``\\frac{1}{2}``, ``1/2`` and ``0.5`` are one answer, and so are ``(2, 3)`` and ``(2,3)``.
"""

from __future__ import annotations

import json
from importlib import resources

from thinkscope.tasks.hub import hub_rows
from thinkscope.tasks.problem import Problem

MATH_HUB = "HuggingFaceH4/MATH-500"
_FIXTURE = resources.files("thinkscope.tasks") / "data" / "math_fixture.jsonl"


def _problem(problem_id: str, row: dict) -> Problem:
    meta = {"source": "math", "subject": row.get("subject"), "level": row.get("level")}
    return Problem(
        problem_id, row["problem"], row["answer"], meta=meta, solution=row.get("solution", "")
    )


def load_math_fixture() -> list[Problem]:
    """The bundled 20-problem fixture (``math``), in file order."""
    rows = [json.loads(line) for line in _FIXTURE.read_text().splitlines() if line.strip()]
    return [_problem(row["id"], row) for row in rows]


def load_math_online(task: str) -> list[Problem]:
    """``HuggingFaceH4/MATH-500[:split]`` from the hub (its one split is ``test``)."""
    split = task.partition(":")[2] or "test"
    rows = hub_rows(MATH_HUB, split, "use --task math, the bundled fixture")
    return [
        _problem(str(row.get("unique_id") or f"math500-{split}-{i}"), row)
        for i, row in enumerate(rows)
    ]
