"""``python -m thinkscope`` and ``python -m thinkscope.cli`` run the command like the script."""

import subprocess
import sys


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_python_dash_m_thinkscope_shows_the_commands():
    done = _run("thinkscope", "--help")
    assert done.returncode == 0, done.stderr
    assert "generate" in done.stdout and "compare" in done.stdout


def test_python_dash_m_thinkscope_cli_turns_a_user_error_into_one_line_and_exit_2(tmp_path):
    done = _run("thinkscope.cli", "generate", "--out", str(tmp_path / "x"), "--field", "nope")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --field: takes question=KEY, answer=KEY or id=KEY, got 'nope'"
    ]
    assert not (tmp_path / "x").exists()
