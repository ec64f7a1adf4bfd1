"""Tests for answer extraction and grading.

``data/grading/cases.jsonl`` holds hand-checked cases: real SmolLM2-135M-Instruct outputs
(``smollm2``, with the prompt ``style`` and ``decoding`` that produced them), GSM8K reference
solutions graded against their own and a wrong gold (``gsm8k-reference``), and hand-written
forms (``form``). A label is what a careful human grader reads as the final answer and
whether it is right. Conventions: the answer after ``####`` is its number, as GSM8K graders
read it; a completion with no answer statement is labelled with the last number it writes
(the documented fallback) or null if it writes none, and is right only if it really answers
the question. Cases marked ``xfail`` are known disagreements with the extractor (``note``).
"""

import json
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

from thinkscope.tasks.answers import Grade, answers_match, extract_answer, grade, normalize_number

CASES = [
    json.loads(line)
    for line in (Path(__file__).parent / "data/grading/cases.jsonl").read_text().splitlines()
    if line.strip()
]


def _param(i: int, case: dict):
    marks = [pytest.mark.xfail(strict=True, reason=case["note"])] if case.get("xfail") else []
    return pytest.param(case, id=f"{case['source']}-{i}", marks=marks)


@pytest.mark.parametrize("case", [_param(i, c) for i, c in enumerate(CASES)])
def test_case(case):
    got = grade(case["completion"], case["gold"])
    assert (got.pred, got.correct) == (case["pred"], case["correct"])


def test_case_counts():
    by_source = Counter(c["source"] for c in CASES)
    assert len(CASES) >= 200
    assert by_source["smollm2"] >= 80
    assert set(by_source) == {"smollm2", "gsm8k-reference", "form"}
    assert sum(bool(c.get("xfail")) for c in CASES) <= 5


@pytest.mark.parametrize(
    "text, expected",
    [
        ("18", "18"),
        ("1,000", "1000"),
        ("$18.00", "18"),
        ("18.0", "18"),
        ("-3", "-3"),
        ("−3", "-3"),
        ("-$18", "-18"),
        ("$-18", "-18"),
        ("18 dollars", "18"),
        ("18%", "18"),
        ("18\\%", "18"),
        ("\\$18", "18"),
        ("18.", "18"),
        ("2.50", "2.5"),
        (".5", "0.5"),
        ("1/2", "1/2"),
        ("2/4", "1/2"),
        ("4/2", "2"),
        ("-0", "0"),
        ("1\\,000", "1000"),
        ("1{,}000", "1000"),
        ("**42**", "42"),
        ("1,234,567.89", "1234567.89"),
        ("12 \\text{ apples}", "12"),
    ],
)
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "nan", "NaN", "inf", "1/0", "3 + 5", "12,34", "1, 2, 3", "x", None, 18]
)
def test_normalize_number_rejects(text):
    assert normalize_number(text) is None


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("18", "18.00", True),
        ("$1,000", "1000", True),
        ("0.5", "1/2", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{3}{4}", "3/4", True),
        ("\\sqrt{2}", "2^{1/2}", True),
        ("x = 5", "5", True),
        ("True", "true", True),
        (" New  York ", "new york", True),
        ("[1, 2]", "[1,2]", True),
        ("[2, 1]", "[1,2]", False),
        ("cat", "tac", False),
        ("18", "18.5", False),
        ("3.14", "\\pi", False),
        ("nan", "nan", True),
        ("", "", False),
        ("", "5", False),
        ("10^{10^{10}}", "5", False),
    ],
)
def test_answers_match(pred, gold, expected):
    assert answers_match(pred, gold) is expected


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<answer>7</answer> #### 8", ("7", "answer-tag")),
        ("#### 8\n\\boxed{9}", ("8", "hash")),
        ("\\boxed{9} The final answer is 10", ("9", "boxed")),
        ("The final answer is 10. The answer is 11.", ("10", "final-answer")),
        ("The answer is 11.\nAnswer: 12", ("11", "the-answer-is")),
        ("A: 12, then 13", ("12", "a-colon")),
        ("3 + 4 = 7", ("7", "last-number")),
        ("no numbers", (None, "none")),
        ("\\boxed{\\frac{1}{\\sqrt{2}}} and more", ("\\frac{1}{\\sqrt{2}}", "boxed")),
    ],
)
def test_extract_answer_methods(completion, expected):
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(
    "bad",
    [None, 18, b"18", "\x00", "}" * 50, "\\boxed{" * 5000, "9" * 5000, "The answer is " * 5000],
)
def test_grade_never_raises(bad):
    assert isinstance(grade(bad, "18"), Grade)
    assert grade("The answer is 18.", bad).correct is False


def test_grade_empty():
    assert grade("", "18") == Grade(None, False, "none")


def _serial() -> list[Grade]:
    return [grade(c["completion"], c["gold"]) for c in CASES]


def test_thread_pool_matches_serial():
    """math-verify's signal timeouts would fail off the main thread; ours are off."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(
            pool.map(grade, [c["completion"] for c in CASES], [c["gold"] for c in CASES])
        )
    assert threaded == _serial()
    with ThreadPoolExecutor(max_workers=2) as pool:  # needs math-verify, not plain numbers
        assert pool.submit(grade, "\\boxed{\\frac{1}{2}}", "0.5").result().correct


def test_process_pool_matches_serial():
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = list(
            pool.map(
                grade, [c["completion"] for c in CASES], [c["gold"] for c in CASES], chunksize=32
            )
        )
    assert done == _serial()
