"""thinkscope.sft and `thinkscope dataset build` on a hand-built run with known counts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset_fixture import CORRECT, ROWS, make_big_run, make_run
from thinkscope.cli.app import main
from thinkscope.core.errors import UserError
from thinkscope.sft import (
    DatasetFilters,
    build_dataset,
    builder,
    has_answer_tag,
    reference_dataset,
)
from thinkscope.sft.filters import apply_filters
from thinkscope.tasks.answers import grade


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _kept(out: Path) -> set[tuple[str, int]]:
    return {(r["problem_id"], r["sample_idx"]) for r in _jsonl(out / "sft_all.jsonl")}


def test_is_correct_is_the_graders_and_sft_correct_holds_only_correct_rows(tmp_path):
    filters = DatasetFilters(truncated="keep")
    result = build_dataset(
        make_run(tmp_path / "run"), tmp_path / "ds", filters, show_progress=False
    )
    rows = _jsonl(result.sft_all)
    assert len(rows) == len(ROWS) and result.n_all == len(ROWS)
    for row in rows:
        graded = grade(row["response"], row["ground_truth"])
        assert row["is_correct"] == graded.correct and row["predicted"] == graded.pred
    assert {(r["problem_id"], r["sample_idx"]) for r in rows if r["is_correct"]} == CORRECT
    stale = next(r for r in rows if (r["problem_id"], r["sample_idx"]) == ("q2", 1))
    assert stale["is_correct"] is False  # the run's stored `correct` said True
    correct = _jsonl(result.sft_correct)
    assert len(correct) == len(CORRECT) == result.n_correct
    assert all(set(r) == {"prompt", "response", "truncated"} for r in correct)
    by_response = {(r["prompt"], r["response"]) for r in rows if r["is_correct"]}
    assert {(r["prompt"], r["response"]) for r in correct} == by_response
    assert {"dtr", "n_tokens"} <= set(rows[0])  # the run is scored
    assert (tmp_path / "ds" / "dtr_hist.png").stat().st_size > 1000
    assert (tmp_path / "ds" / "length_hist.png").is_file()
    assert not (tmp_path / "ds" / ".build").exists()


ALL = {(p, k) for p, k, *_ in ROWS}
TRUNCATED = {(p, k) for p, k, _, _, finish, *_ in ROWS if finish == "length"}
# each filter alone, truncated traces kept (`truncated="exclude"` is the default)
ONE_BY_ONE = [
    ({"require_correct": True}, CORRECT),
    ({"require_answer_tag": True}, ALL - {("q0", 2), ("q2", 0), ("q3", 0)}),
    ({"truncated": "exclude"}, ALL - {("q1", 0), ("q3", 0)}),
    ({"min_tokens": 10}, {(p, k) for p, k, _, _, _, n, *_ in ROWS if n >= 10}),
    ({"max_tokens": 20}, {(p, k) for p, k, _, _, _, n, *_ in ROWS if n <= 20}),
    ({"dedupe": True}, ALL - {("q0", 1)}),
    ({"min_dtr": 0.3}, {("q0", 0), ("q0", 1), ("q0", 3), ("q1", 0), ("q1", 1), ("q2", 1)}),
    ({"min_dtr": 0.45}, {("q0", 0), ("q0", 1), ("q0", 3), ("q2", 1)}),
    # q1 has no trace at 0.45: its best correct one (q1/0, DTR 0.3) comes back; q3 has none
    (
        {"min_dtr": 0.45, "fallback_best_correct": True},
        {("q0", 0), ("q0", 1), ("q0", 3), ("q2", 1), ("q1", 0)},
    ),
    (
        {"keep_per_question": 2},
        {("q0", 3), ("q0", 0), ("q1", 1), ("q1", 0), ("q2", 1), ("q2", 0), ("q3", 0)},
    ),
    # q1/2 and q1/3 tie on DTR (0.15): the higher log-probability (q1/3) wins
    (
        {"require_correct": True, "keep_per_question": 2},
        {("q0", 0), ("q0", 1), ("q1", 0), ("q1", 3), ("q2", 0)},
    ),
]


@pytest.mark.parametrize(("values", "expected"), ONE_BY_ONE)
def test_each_filter_keeps_the_hand_counted_traces(tmp_path, values, expected):
    filters = DatasetFilters(**{"truncated": "keep", **values})
    result = build_dataset(
        make_run(tmp_path / "run"), tmp_path / "ds", filters, show_progress=False
    )
    assert _kept(tmp_path / "ds") == expected
    assert result.steps[-1].kept == len(expected) == result.n_all
    assert result.steps[0].before == len(ROWS)
    card = (tmp_path / "ds" / "README.md").read_text()
    assert f"| `{result.steps[-1].flag}` | {result.steps[-1].before} | {len(expected)} |" in card


def test_truncated_traces_are_excluded_by_default_and_the_card_counts_them(tmp_path):
    run = make_run(tmp_path / "run")
    result = build_dataset(run, tmp_path / "ds", show_progress=False)
    assert _kept(tmp_path / "ds") == ALL - TRUNCATED and len(TRUNCATED) == 2
    assert [(s.flag, s.before, s.kept) for s in result.steps] == [("--truncated exclude", 11, 9)]
    assert all("truncated" not in r for r in _jsonl(result.sft_all))
    card = result.card.read_text()
    assert "policy `exclude`, 2 excluded." in card
    summary = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert summary["truncated"] == {"policy": "exclude", "excluded": 2}
    # after --require-correct only one truncated trace (q1/0) is left to exclude
    strict = DatasetFilters(require_correct=True)
    result = build_dataset(run, tmp_path / "strict", strict, show_progress=False)
    assert _kept(tmp_path / "strict") == CORRECT - TRUNCATED
    assert "policy `exclude`, 1 excluded." in result.card.read_text()


def test_only_truncated_traces_left_says_how_to_keep_them():
    import pandas as pd

    frame = pd.DataFrame({"problem_id": ["q"], "finish_reason": ["length"], "is_correct": [True]})
    with pytest.raises(
        UserError, match="after --truncated exclude: it dropped all 1; pass --truncated keep"
    ):
        apply_filters(frame, DatasetFilters(), scored=False)


def test_keep_marks_truncated_rows_in_every_file(tmp_path):
    result = build_dataset(
        make_run(tmp_path / "run"),
        tmp_path / "ds",
        DatasetFilters(truncated="keep"),
        format="messages",
        show_progress=False,
    )
    marked = {(r["problem_id"], r["sample_idx"]) for r in _jsonl(result.sft_all) if r["truncated"]}
    assert marked == TRUNCATED
    correct = _jsonl(result.sft_correct)
    assert sorted(r["truncated"] for r in correct) == [False] * 6 + [True]  # q1/0 is correct
    assert "policy `keep`, 2 kept, marked `truncated: true`" in result.card.read_text()
    summary = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert summary["truncated"] == {"policy": "keep", "kept": 2}


def test_fallback_step_reports_what_it_restored(tmp_path):
    filters = DatasetFilters(min_dtr=0.45, fallback_best_correct=True, truncated="keep")
    result = build_dataset(
        make_run(tmp_path / "run"), tmp_path / "ds", filters, show_progress=False
    )
    (step,) = result.steps
    assert (step.before, step.kept, step.dropped, step.restored) == (11, 5, 6, 1)


def test_build_adds_a_section_to_the_runs_html_report(tmp_path):
    from thinkscope.runstore.sections import render_sections

    run = make_run(tmp_path / "run")
    build_dataset(run, tmp_path / "my ds", DatasetFilters(min_dtr=0.45), show_progress=False)
    html = render_sections(run)
    assert "SFT dataset my ds" in html and "--min-dtr" in html
    assert (run / "report_sections" / "dataset-my_ds" / "dtr_hist.png").is_file()


def test_unscored_run_ranks_by_sampled_logprob(tmp_path):
    run = make_run(tmp_path / "run", scored=False)
    filters = DatasetFilters(require_correct=True, keep_per_question=1)
    build_dataset(run, tmp_path / "ds", filters, show_progress=False)
    # best mean token log-prob among correct: q0/2 (-0.2), q1/3 (-0.1), q2/0 (-0.4)
    assert _kept(tmp_path / "ds") == {("q0", 2), ("q1", 3), ("q2", 0)}
    assert "dtr" not in _jsonl(tmp_path / "ds" / "sft_all.jsonl")[0]


def test_answer_tag_needs_a_closed_nonempty_tag_or_boxed():
    assert has_answer_tag("x </think> <answer>5</answer>") and has_answer_tag("so \\boxed{5}")
    assert not has_answer_tag("<answer></answer>") and not has_answer_tag("<answer>5")
    assert not has_answer_tag("The answer is 5.")


def test_messages_format_is_trl_conversational(tmp_path):
    from trl.data_utils import is_conversational

    build_dataset(
        make_run(tmp_path / "run"), tmp_path / "ds", format="messages", show_progress=False
    )
    row = _jsonl(tmp_path / "ds" / "sft_correct.jsonl")[0]
    assert is_conversational(row) and list(row) == ["messages"]
    system, user, assistant = row["messages"]
    assert system["role"] == "system" and system["content"].startswith("A conversation between")
    assert user == {"role": "user", "content": "Question q0?"}
    assert assistant == {"role": "assistant", "content": "<think>" + ROWS[0][2]}


def test_hf_export_round_trips(tmp_path):
    from datasets import load_from_disk

    result = build_dataset(make_run(tmp_path / "run"), tmp_path / "ds", show_progress=False)
    saved = load_from_disk(str(result.hf_dir))
    assert saved["all"].to_list() == _jsonl(result.sft_all)
    assert saved["correct"].num_rows == len(CORRECT - TRUNCATED)


def test_interrupted_build_resumes_without_regrading_or_duplicates(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    graded, real = [], builder.grade_rows

    def dies_after_two_chunks(frame):
        if len(graded) == 6:
            raise KeyboardInterrupt
        graded.extend(frame["problem_id"] + "/" + frame["sample_idx"].astype(str))
        return real(frame)

    monkeypatch.setattr(builder, "grade_rows", dies_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(run, tmp_path / "ds", shard_rows=3, show_progress=False)
    assert len(graded) == 6 and not (tmp_path / "ds" / "sft_all.jsonl").exists()
    with pytest.raises(UserError, match="--resume"):
        build_dataset(run, tmp_path / "ds", shard_rows=3, show_progress=False)
    graded.clear()

    def counts(frame):
        graded.append(len(frame))
        return real(frame)

    monkeypatch.setattr(builder, "grade_rows", counts)
    build_dataset(run, tmp_path / "ds", resume=True, shard_rows=3, show_progress=False)
    assert graded == [3, 2]  # only rows 6..10 were graded again
    rows = _jsonl(tmp_path / "ds" / "sft_all.jsonl")
    assert len(rows) == len(ALL - TRUNCATED) == len(_kept(tmp_path / "ds"))
    build_dataset(run, tmp_path / "whole", show_progress=False)
    assert rows == _jsonl(tmp_path / "whole" / "sft_all.jsonl")


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from thinkscope.cli.app import main; main()", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkilled_build_resumes_without_duplicates(tmp_path):
    run = make_big_run(tmp_path / "run", problems=300)
    out = tmp_path / "ds"
    args = ["dataset", "build", str(run), "--out", str(out), "--shard-rows", "20"]
    proc = _cli(*args)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / ".build" / "graded").glob("*.parquet"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shards = len(list((out / ".build" / "graded").glob("*.parquet")))
    assert 3 <= shards < 30, "the build must be killed mid-way"
    assert not (out / "sft_all.jsonl").exists()
    resumed = _cli(*args, "--resume")
    assert resumed.wait() == 0, resumed.stderr.read().decode()[-2000:]
    rows = _jsonl(out / "sft_all.jsonl")
    assert len(rows) == 600 == len({(r["problem_id"], r["sample_idx"]) for r in rows})
    assert all(r["is_correct"] == (r["sample_idx"] == 0) for r in rows)
    assert len(_jsonl(out / "sft_correct.jsonl")) == 300


def _error(capsys, *argv: str) -> str:
    sys.argv = ["thinkscope", *argv]
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_gets_one_line_exit_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THINKSCOPE_PROGRESS", "0")  # no grading progress lines before the error
    unscored = str(make_run(tmp_path / "unscored", scored=False))
    scored = str(make_run(tmp_path / "scored"))
    out = tmp_path / "ds"
    build = ["dataset", "build", "--out", str(out)]
    assert "thinkscope score" in _error(capsys, *build, unscored, "--min-dtr", "0.2")
    assert "after --min-dtr" in _error(capsys, *build, scored, "--min-dtr", "0.95")
    strict = ["--require-correct", "--require-answer-tag", "--max-tokens", "9"]
    err = _error(capsys, *build, scored, *strict)
    assert "after --max-tokens: it dropped all 4" in err
    assert "--truncated" in _error(capsys, *build, scored, "--truncated", "drop")
    assert not out.exists()
    nocol = str(make_run(tmp_path / "nocol", drop=("completion",)))
    assert "lacks the column(s) completion" in _error(capsys, *build, nocol)
    assert "not found" in _error(capsys, *build, str(tmp_path / "nowhere"))
    assert "--dataset-format" in _error(capsys, *build, scored, "--dataset-format", "chatml")
    assert "needs --min-dtr" in _error(capsys, *build, scored, "--fallback-best-correct")
    assert "--keep-per-question" in _error(capsys, *build, scored, "--keep-per-question", "0")
    assert not out.exists()
    sys.argv = ["thinkscope", *build, scored]
    with pytest.raises(SystemExit) as ok:
        main()
    assert ok.value.code == 0
    capsys.readouterr()
    assert "finished dataset" in _error(capsys, *build, scored)


def test_push_to_hub_offline_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("THINKSCOPE_PROGRESS", "0")  # no grading progress lines before the error
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    scored = str(make_run(tmp_path / "scored"))
    err = _error(
        capsys, "dataset", "build", scored, "--out", str(tmp_path / "ds"), "--push-to-hub", "me/x"
    )
    assert err == (
        "error: --push-to-hub me/x: the Hugging Face Hub cannot be reached (offline or "
        "HF_HUB_OFFLINE=1)"
    )
    assert not (tmp_path / "ds").exists()  # refused before grading: nothing written


def test_reference_dataset_is_r1_form_and_graded_correct(tmp_path):
    result = reference_dataset("gsm8k:train", tmp_path / "ref", questions=30)
    rows = _jsonl(result.sft_all)
    assert result.n_correct == result.n_all == 30
    for row in rows:
        assert row["prompt"].startswith("A conversation between User and Assistant.")
        assert row["prompt"].endswith("\nAssistant: <think>") and "<<" not in row["response"]
        assert row["response"].endswith(f"</think> <answer>{row['ground_truth']}</answer>")
        assert grade(row["response"], row["ground_truth"]).correct and row["is_correct"]
    with pytest.raises(UserError, match="no reference solution"):
        reference_dataset("demo-arith", tmp_path / "none", questions=3)
