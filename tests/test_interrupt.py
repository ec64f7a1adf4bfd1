"""Ctrl-C: a real SIGINT to ``thinkscope generate`` mid-run exits 130 with one line that holds the
exact command that resumes; the folder is not marked finished; that command finishes the run
with the samples of an uninterrupted one."""

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from thinkscope.runstore.folder import Run
from thinkscope.runstore.registry import list_runs

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"
SCRIPT = Path(sys.executable).parent / "thinkscope"


def _start(args: list[str], progress: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "THINKSCOPE_PROGRESS": progress}
    return subprocess.Popen(
        [str(SCRIPT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """A shell without job control starts background jobs with SIGINT ignored, and the child
    would inherit that: give it the default, as a terminal's foreground process has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow  # three generate processes: ~100 s at load 10 on 2 cores
def test_sigint_mid_run_says_how_to_resume_and_that_command_finishes_the_run(
    tiny_model_dir, tmp_path
):
    args = ["generate", "--model", str(tiny_model_dir), "--task", GYM, "--questions", "12"]
    args += ["--n", "2", "--batch-size", "2", "--max-new-tokens", "8", "--seed", "7"]
    out = tmp_path / "run one"  # a space: the printed command must quote it
    proc = _start([*args, "--out", str(out)], progress="1")  # inside a drawn rich bar
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "shards").glob("*.parquet")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == "interrupted; resume with: thinkscope " + shlex.join(
        [*args, "--out", str(out), "--resume"]
    )
    shards = len(list((out / "shards").glob("*.parquet")))
    assert 1 <= shards < 12, "the run must be interrupted mid-way"
    assert not Run(out).finished and not (out / "traces.parquet").exists()
    assert not [r for r in list_runs() if Path(r["path"]) == out and r["status"] == "finished"]

    resumed = _start(shlex.split(last.partition("resume with: thinkscope ")[2]), progress="auto")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "generate: 24/24 samples" in err  # off a terminal, progress reaches the log
    whole = _start([*args, "--out", str(tmp_path / "whole")], progress="0")
    assert whole.wait(timeout=300) == 0
    a = pd.read_parquet(out / "traces.parquet")
    b = pd.read_parquet(tmp_path / "whole" / "traces.parquet")
    assert len(a) == 24 and not a.duplicated(["problem_id", "sample_idx"]).any()
    pd.testing.assert_frame_equal(a, b)
