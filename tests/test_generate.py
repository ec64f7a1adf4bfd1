import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from thinkscope.cli.app import main
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.runstore.registry import list_runs
from thinkscope.runstore.trace import TRACE_COLUMNS

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def _config(model_dir, **overrides):
    values = dict(
        model=str(model_dir),
        task=GYM,
        questions=3,
        n=2,
        max_new_tokens=6,
        temperature=0.8,
        prompt_style="fewshot",
        batch_size=2,
    )
    return GenerateConfig(**{**values, **overrides})


def test_a_run_folder_holds_config_env_timing_log_and_traces(tiny_model_dir, tmp_path):
    run = generate_run(_config(tiny_model_dir), tmp_path / "run", show_progress=False)
    for name in ("config.yaml", "env.json", "timing.json", "log.txt", "traces.parquet"):
        assert (run.path / name).is_file(), name
    assert not (run.path / "shards").exists()
    frame = run.traces()
    assert set(TRACE_COLUMNS) <= set(frame.columns)
    assert len(frame) == 6 and sorted(frame["sample_idx"].unique()) == [0, 1]
    assert (frame["n_tokens"] == frame["token_ids"].map(len)).all()
    assert (frame["token_logprobs"].map(len) == frame["n_tokens"]).all()
    assert set(frame["finish_reason"]) <= {"stop", "length"}
    assert run.config["n"] == 2 and run.timing["generated_tokens"] == frame["n_tokens"].sum()
    env = json.loads((run.path / "env.json").read_text())
    assert {"git_commit", "packages", "torch", "cpu", "hostname"} <= env.keys()
    assert [r["path"] for r in list_runs()] == [str(run.path.resolve())]


def test_prompt_ids_hold_no_padding(tiny_model_dir, tmp_path):
    frame = generate_run(
        _config(tiny_model_dir, questions=4), tmp_path / "r", show_progress=False
    ).traces()
    pad = 0  # "<pad>" is the tiny tokenizer's first special token
    assert not any(pad in list(ids) for ids in frame["prompt_ids"])
    assert len({len(ids) for ids in frame["prompt_ids"]}) > 1  # prompts really differ in length


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", "from thinkscope.cli.app import main; main()", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_samples(tiny_model_dir, tmp_path):
    args = [
        "generate",
        "--model",
        str(tiny_model_dir),
        "--task",
        GYM,
        "--questions",
        "40",
        "--n",
        "2",
        "--batch-size",
        "2",
        "--max-new-tokens",
        "24",
        "--seed",
        "7",
    ]
    killed = tmp_path / "killed"
    proc = _cli(*args, "--out", str(killed))
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "shards").glob("*.parquet"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list((killed / "shards").glob("*.parquet")))
    assert 3 <= done_before < 40, "the run must be killed mid-way"
    assert not (killed / "traces.parquet").exists()
    again = _cli(*args, "--out", str(killed))  # without --resume: refused
    assert again.wait() == 2 and b"--resume" in again.stderr.read()
    resumed = _cli(*args, "--out", str(killed), "--resume")
    assert resumed.wait() == 0, resumed.stderr.read().decode()[-2000:]
    whole = _cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.wait() == 0
    a = pd.read_parquet(killed / "traces.parquet")
    b = pd.read_parquet(tmp_path / "whole" / "traces.parquet")
    assert len(a) == 80 and not a.duplicated(["problem_id", "sample_idx"]).any()
    pd.testing.assert_frame_equal(a, b)


def _error(capsys, *argv) -> str:
    sys.argv = ["thinkscope", *argv]
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_gets_one_line_and_exit_code_2(
    tiny_model_dir, tiny_model_dir_no_chat, tmp_path, capsys
):
    out = ["--out", str(tmp_path / "x")]
    assert "unknown model" in _error(capsys, "generate", "--model", "nobody/nothing", *out)
    model = ["--model", str(tiny_model_dir)]
    assert "unknown task" in _error(capsys, "generate", *model, "--task", "nope", *out)
    assert "not found" in _error(
        capsys, "generate", *model, "--task", str(tmp_path / "a.jsonl"), *out
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "2"}\n{"question": oops}\n')
    assert "bad.jsonl:2" in _error(capsys, "generate", *model, "--task", str(bad), *out)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"q": "1+1?", "answer": "2"}\n')
    assert "missing.jsonl:1" in _error(capsys, "generate", *model, "--task", str(missing), *out)
    assert "--n" in _error(capsys, "generate", *model, "--task", GYM, "--n", "0", *out)
    plain = ["--model", str(tiny_model_dir_no_chat), "--task", GYM, "--template", "chat"]
    assert "no chat template" in _error(capsys, "generate", *plain, *out)
    assert not (tmp_path / "x").exists(), "nothing is written for bad input"
    finished = generate_run(_config(tiny_model_dir), tmp_path / "done", show_progress=False)
    before = {p: p.read_bytes() for p in finished.path.iterdir() if p.is_file()}
    capsys.readouterr()  # drop what loading the model printed
    assert "finished run" in _error(
        capsys, "generate", *model, "--task", GYM, "--out", str(finished.path)
    )
    assert before == {p: p.read_bytes() for p in finished.path.iterdir() if p.is_file()}


def test_jsonl_tasks_map_their_fields(tiny_model_dir, tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        {"uid": f"q{i}", "problem": f"What is {i} + 1?", "solution": str(i + 1)} for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = _config(
        tiny_model_dir,
        task=f"jsonl:{path}",
        questions=3,
        n=1,
        fields={"question": "problem", "answer": "solution", "id": "uid"},
    )
    frame = generate_run(config, tmp_path / "run", show_progress=False).traces()
    assert frame["problem_id"].tolist() == ["q0", "q1", "q2"]
    assert frame["gold"].tolist() == ["1", "2", "3"]
    assert Path(tmp_path / "run" / "traces.parquet").is_file()
