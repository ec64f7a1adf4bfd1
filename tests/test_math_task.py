"""The MATH task: the bundled fixture, the hub loader at the ``datasets`` boundary, and
LaTeX-aware grading (equal and unequal pairs)."""

import sys
import types

import pytest

from thinkscope.core.errors import UserError
from thinkscope.tasks.answers import answers_match, grade
from thinkscope.tasks.loaders import load_problems
from thinkscope.tasks.math_problems import MATH_HUB


def test_the_fixture_loads_and_its_solutions_grade_correct():
    problems = load_problems("math")
    assert len(problems) == 20 and len({p.id for p in problems}) == 20
    assert [p.id for p in load_problems("math", questions=3)] == [p.id for p in problems[:3]]
    for p in problems:
        graded = grade(p.solution, p.answer)  # each reference solution boxes its own answer
        assert graded.correct and graded.method == "boxed", (p.id, graded)
    shifted = problems[1:] + problems[:1]
    wrong = [grade(p.solution, q.answer).correct for p, q in zip(problems, shifted, strict=True)]
    assert not any(wrong)  # and a neighbour's answer is wrong: the grading can fail


EQUAL = [
    (r"\frac{1}{2}", "0.5"),
    (r"\frac{1}{2}", "1/2"),
    (r"\dfrac{1}{2}", "0.5"),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
    (r"2\sqrt{2}", r"\sqrt{8}"),
    (r"(2,3)", r"(2, 3)"),
    (r"[4,\infty)", r"[4, \infty)"),
    (r"(-\infty, 3]", r"(-\infty,3]"),
    (r"25\pi", r"25 \pi"),
]
UNEQUAL = [
    (r"\frac{1}{2}", "0.2"),
    (r"\frac{2}{3}", r"\frac{3}{2}"),
    (r"\frac{1}{3}", "0.33"),  # no rounding
    (r"\sqrt{2}", r"\sqrt{3}"),
    (r"(2,3)", r"[2,3]"),  # open versus closed interval
    (r"[4,\infty)", r"(4,\infty)"),
    (r"25\pi", "25"),
]


@pytest.mark.parametrize(("pred", "gold"), EQUAL)
def test_latex_equal_pairs(pred, gold):
    assert answers_match(pred, gold) and answers_match(gold, pred)


@pytest.mark.parametrize(("pred", "gold"), UNEQUAL)
def test_latex_unequal_pairs(pred, gold):
    assert not answers_match(pred, gold) and not answers_match(gold, pred)


def test_boxed_extraction_in_a_completion():
    text = r"Multiply by $\sqrt{3}$ ... so the answer is $\boxed{\dfrac{\sqrt3}{3}}$."
    assert grade(text, r"\frac{1}{\sqrt{3}}").correct
    assert not grade(text, r"\frac{1}{3}").correct
    nested = r"First \boxed{2} is wrong; the domain is $\boxed{[4,\infty)}$."
    assert grade(nested, r"[4,\infty)").pred == r"[4,\infty)"


def _fake_datasets(monkeypatch, load_dataset) -> list:
    calls: list = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return load_dataset(*args, **kwargs)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=record))
    return calls


def test_the_hub_loader_maps_math500_rows(monkeypatch):
    rows = [
        {
            "problem": "What is $1+1$?",
            "solution": r"$1+1=\boxed{2}$",
            "answer": "2",
            "subject": "Prealgebra",
            "level": 1,
            "unique_id": "test/prealgebra/1.json",
        }
    ]
    calls = _fake_datasets(monkeypatch, lambda *a, **k: rows)
    (problem,) = load_problems(f"{MATH_HUB}:test")
    assert calls == [((MATH_HUB,), {"split": "test"})]
    assert (problem.id, problem.question, problem.answer) == (
        "test/prealgebra/1.json",
        "What is $1+1$?",
        "2",
    )
    assert problem.meta["subject"] == "Prealgebra" and problem.solution == rows[0]["solution"]


def test_the_hub_loader_offline_is_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    _fake_datasets(monkeypatch, offline)
    with pytest.raises(UserError, match="offline\\? use --task math") as err:
        load_problems(MATH_HUB)
    assert "\n" not in str(err.value)
