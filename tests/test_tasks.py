"""The bundled GSM8K splits load with their gold answers and worked solutions."""

import json
from pathlib import Path

import pytest

from thinkscope.core.errors import UserError
from thinkscope.tasks.loaders import load_problems

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"


def test_train_split_holds_every_row_with_its_solution_and_answer():
    problems = load_problems("gsm8k:train")
    assert len(problems) == 7473
    first = problems[0]
    assert first.id == "gsm8k-train-0"
    assert first.answer == "72"
    assert first.solution.startswith("Natalia sold 48/2 = 24 clips in May.")
    assert "<<" not in first.solution and "####" not in first.solution


def test_test_split_is_the_default_and_ids_name_the_split():
    default, explicit = load_problems("gsm8k", 3), load_problems("gsm8k:test", 3)
    assert [p.id for p in default] == ["gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]
    assert default == explicit


def test_answers_drop_thousands_separators():
    big = [p for p in load_problems("gsm8k:train") if len(p.answer) > 3]
    assert big and all("," not in p.answer for p in big)


def test_unknown_split_is_a_user_error():
    with pytest.raises(UserError, match="unknown task"):
        load_problems("gsm8k:dev")


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared data folder is not beside the checkout")
def test_bundled_train_split_equals_the_source_file():
    rows = [json.loads(line) for line in (SHARED / "train.jsonl").read_text().splitlines()]
    problems = load_problems("gsm8k:train")
    assert [p.question for p in problems] == [r["question"] for r in rows]


def test_a_jsonl_task_is_recorded_with_its_absolute_path(tmp_path, monkeypatch):
    """So that a run's config names the same file from any directory (runs reproduce)."""
    from thinkscope.tasks.spec import TaskSpec

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.jsonl").write_text('{"question": "1 + 1?", "answer": "2"}\n')
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / "sub" / "t.jsonl")
    assert TaskSpec(task="jsonl:sub/t.jsonl").task == f"jsonl:{absolute}"
    assert TaskSpec(task="sub/t.jsonl").task == absolute
    assert TaskSpec(task="gsm8k:train").task == "gsm8k:train"  # not a file: as given
