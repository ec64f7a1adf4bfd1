"""StrategyQA: the bundled fixture, the hub boundary, a jsonl mapping, and yes/no grading."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from thinkscope.core.errors import UserError
from thinkscope.tasks.answers import grade
from thinkscope.tasks.loaders import load_problems
from thinkscope.tasks.strategyqa import yes_no


def test_the_fixture_loads_as_yes_no_problems():
    problems = load_problems("strategyqa")
    assert len(problems) == 20
    assert {p.answer for p in problems} == {"yes", "no"}
    assert problems[0].id == "fixture-00" and problems[0].meta["facts"]
    assert len(load_problems("strategyqa", questions=5)) == 5


@pytest.mark.parametrize(
    ("completion", "gold", "pred", "correct"),
    [
        ("Yes. A tomato holds seeds.", "yes", "Yes", True),
        ("No, because Paris and Lyon are in France.", "yes", "No", False),
        ("Both are in France. The answer is no.", "no", "no", True),
        ("Answer: True", "yes", "True", True),  # true/false normalised
        ("**Answer:** false", "no", "false", True),
        ("<answer>YES</answer>", "True", "YES", True),  # gold True normalised
        ("So \\boxed{\\text{no}}", "no", "no", True),
        ("The answer is yes. Wait, the answer is no.", "yes", "no", False),  # the last marker
        ("Answer: No\n\nQuestion: Is ice cold?\nAnswer: Yes", "no", "No", True),  # new turn cut
        ("Nothing suggests it fits.", "no", None, False),  # "No" inside a word: no answer
        ("Yesterday it rained; I know no more.", "yes", None, False),
        ("I think so, yes.", "yes", None, False),  # an unmarked yes mid-sentence is no answer
        ("The answer is 12.", "no", None, False),
    ],
)
def test_yes_no_grading(completion, gold, pred, correct):
    got = grade(completion, gold)
    assert (got.pred, got.correct) == (pred, correct)


def test_numeric_answers_are_not_graded_as_yes_no():
    assert grade("The answer is 8.", "8").correct
    assert yes_no("8") is None and yes_no(" No. ") == "no" and yes_no(False) == "no"


def test_the_hub_dataset_maps_its_rows(monkeypatch):
    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        return [{"qid": "q1", "question": "Is ice cold?", "answer": True, "facts": ["f"]}]

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    (problem,) = load_problems("ChilleD/StrategyQA:train")
    assert calls == [("ChilleD/StrategyQA", "train")]
    assert (problem.id, problem.answer, problem.meta["facts"]) == ("q1", "yes", ["f"])


def test_the_hub_offline_fails_in_one_line(monkeypatch):
    def load_dataset(name, split):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(UserError, match="offline\\? use --task strategyqa"):
        load_problems("ChilleD/StrategyQA")


def test_a_jsonl_file_maps_to_yes_no(tmp_path):
    path = tmp_path / "sqa.jsonl"
    path.write_text(json.dumps({"q": "Is ice cold?", "label": True}) + "\n")
    (problem,) = load_problems(f"jsonl:{path}", fields={"question": "q", "answer": "label"})
    assert grade("Yes.", problem.answer).correct and not grade("No.", problem.answer).correct
