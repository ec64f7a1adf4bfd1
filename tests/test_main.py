"""The entry point: ``python -m thinkscope`` and the console script run the command; every error
is one line on stderr with its exit code (2 usage, 1 failure, 130 interrupted, with the command
that resumes), and ``--debug`` anywhere shows the traceback instead."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from thinkscope.cli.app import COMMANDS, Entry, main, resume_hint
from thinkscope.core.errors import RunFailure, UserError


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


def _thinkscope(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "thinkscope"  # the installed console script
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_the_console_script_answers_a_typo_in_one_line_with_the_closest_command():
    done = _thinkscope("generat", "--out", "x")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: No such command 'generat'. Did you mean 'generate'? (see `thinkscope --help`)"
    ]
    assert done.stdout == ""


def fail(kind: str, resume: bool = typer.Option(False, help="Continue.")) -> None:
    """A command that fails as ``kind`` says."""
    if kind == "user":
        raise UserError("--x: takes a number,\n  got 'y'")
    if kind == "run":
        raise RunFailure("the backend did not start")
    if kind == "interrupt":
        raise KeyboardInterrupt
    raise ZeroDivisionError("division by zero")


def fail_once(kind: str) -> None:
    """The same command without ``--resume``."""
    fail(kind)


@pytest.fixture
def commands(monkeypatch):
    monkeypatch.setitem(COMMANDS, "fail", Entry(f"{__name__}:fail", "Fail."))
    monkeypatch.setitem(COMMANDS, "fail-once", Entry(f"{__name__}:fail_once", "Fail once."))


def _main(capsys, *args: str) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    assert captured.out == ""
    return exit_info.value.code, captured.err.splitlines()


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["generate", "--bogus"], 2, "error: No such option: --bogus"),
        (["runs", "lst"], 2, "error: No such command 'lst'. Did you mean 'list'?"),
        (["fail"], 2, "error: Missing argument 'kind'. (see `thinkscope fail --help`)"),
        (["fail", "user"], 2, "error: --x: takes a number, | got 'y'"),  # one line
        (["fail", "run"], 1, "error: the backend did not start"),
        (
            ["fail", "bug"],
            1,
            "error: ZeroDivisionError: division by zero (a bug in thinkscope; "
            "`thinkscope --debug ...` shows where)",
        ),
        (
            ["fail", "interrupt"],
            130,
            "interrupted; resume with: thinkscope fail interrupt --resume",
        ),
        (
            ["fail", "interrupt", "--resume"],
            130,
            "interrupted; resume with: thinkscope fail interrupt --resume",
        ),
        (["fail-once", "interrupt"], 130, "interrupted"),  # no --resume: no hint
    ],
)
def test_every_error_is_one_line_with_its_exit_code(commands, capsys, args, code, line):
    got, err = _main(capsys, *args)
    assert got == code
    assert len(err) == 1 and err[0].startswith(line), err
    if line == "interrupted":
        assert err == ["interrupted"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_anywhere_shows_the_traceback(commands, capsys, where):
    args = ["--debug", "fail", "bug"] if where == "before" else ["fail", "bug", "--debug"]
    with pytest.raises(ZeroDivisionError):
        main(args)
    with pytest.raises(UserError):
        main([*args[:-1], "user"] if where == "before" else ["fail", "user", "--debug"])


def test_a_rerun_that_resumes_is_the_hint_of_a_command_without_resume():
    args = ["decode-sweep", "--configs", "c.yaml", "--out", "my sweep"]
    assert resume_hint(args) == "; resume with: thinkscope " + shlex.join(args)
    assert resume_hint(["analyze", "run"]) == ""
    assert resume_hint(["dataset", "build", "run", "--out", "d"]).endswith("--out d --resume")
