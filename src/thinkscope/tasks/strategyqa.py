"""StrategyQA (Geva et al., 2021): yes/no questions that need an implicit chain of facts.

- ``strategyqa``: a bundled fixture of 20 yes/no questions in StrategyQA's format (``qid``,
  ``question``, boolean ``answer``, ``facts``), written for thinkscope under its Apache-2.0
  licence. It is a fixture for offline runs and tests, not the StrategyQA dataset.
- ``ChilleD/StrategyQA[:split]``: StrategyQA from the hub through ``datasets`` (online only;
  splits ``train`` and ``test``).
- Offline, any yes/no file works as ``jsonl:<path>`` (``--field answer=KEY`` maps its fields).

Gold answers are ``yes`` or ``no``. A gold answer that is yes/no/true/false (any case) is
graded as yes/no by :func:`thinkscope.tasks.answers.grade` (:func:`extract_yes_no`):
the completion's answer is the last ``answer``-marked yes/no/true/false ("The answer is no",
"Answer: Yes", ``<answer>yes</answer>``, ``\\boxed{no}``), else its first word when that is
one; anything else states no answer. A model that starts a new "Question:" turn after
answering is cut there, as for numeric answers.
"""

from __future__ import annotations

import json
import re
from importlib import resources

from thinkscope.core.errors import UserError
from thinkscope.tasks.hub import hub_rows
from thinkscope.tasks.problem import Problem

STRATEGYQA_HUB = "ChilleD/StrategyQA"
_FIXTURE = resources.files("thinkscope.tasks") / "data" / "strategyqa_fixture.jsonl"
_WORDS = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_WORD = r"(yes|no|true|false)\b"
_MARKED = re.compile(
    r"(?:<answer>|\\boxed\{(?:\\text\{)?|\banswer\b\**(?:[ \t]+(?:is|would be|will be))?"
    r"|^[ \t>#*-]*A\b)[ \t]*\**[ \t]*:?[ \t]*\**[ \t]*[\"'“(]?[ \t]*" + _WORD,
    re.I | re.M,
)
_FIRST = re.compile(r"[\s*\"'“(]*" + _WORD, re.I)
_NEW_TURN = re.compile(r"\n[ \t*#]*(?:Question|Q|User|Human|Problem)[ \t]*\d*[ \t*]*:", re.I)


def yes_no(text: object) -> str | None:
    """``"yes"`` or ``"no"`` for a yes/no/true/false answer (any case, a final period or
    quotes allowed; ``True``/``False`` too), else None."""
    if isinstance(text, bool):
        return "yes" if text else "no"
    if not isinstance(text, str):
        return None
    return _WORDS.get(text.strip().strip("*\"'`.!").strip().casefold())


def extract_yes_no(completion: str) -> tuple[str | None, str]:
    """``(word, method)``: the answer word as written (``Yes``, ``false``...; :func:`yes_no`
    reads it) and ``"yes-no-marker"`` or ``"first-word"``, or ``(None, "none")``."""
    marked = list(_MARKED.finditer(completion))
    if marked and (cut := _NEW_TURN.search(completion, marked[0].start())):
        marked = [m for m in marked if m.start() < cut.start()]
    if marked:
        return marked[-1][1], "yes-no-marker"
    if first := _FIRST.match(completion):
        return first[1], "first-word"
    return None, "none"


def _problem(problem_id: str, row: dict) -> Problem:
    answer = yes_no(row["answer"])
    if answer is None:
        raise UserError(f"StrategyQA row {problem_id}: answer {row['answer']!r} is not yes/no")
    meta = {"source": "strategyqa", "facts": list(row.get("facts") or [])}
    return Problem(problem_id, row["question"], answer, meta=meta)


def load_strategyqa_fixture() -> list[Problem]:
    """The bundled 20-question fixture (``strategyqa``), in file order."""
    rows = [json.loads(line) for line in _FIXTURE.read_text().splitlines() if line.strip()]
    return [_problem(row["qid"], row) for row in rows]


def load_strategyqa_online(task: str) -> list[Problem]:
    """``ChilleD/StrategyQA[:split]`` from the hub (default split ``test``)."""
    split = task.partition(":")[2] or "test"
    rows = hub_rows(
        STRATEGYQA_HUB, split, "use --task strategyqa, the bundled fixture, or jsonl:<path>"
    )
    return [
        _problem(str(row.get("qid") or f"strategyqa-{split}-{i}"), row)
        for i, row in enumerate(rows)
    ]
