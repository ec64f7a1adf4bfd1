"""The shared progress bar: rate from the caller's field or rich's estimate, an ETA, the one
switch (caller, ``THINKSCOPE_PROGRESS``, terminal) that decides whether any bar is drawn, and
the plain lines that reach a log where no bar is drawn."""

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress, TimeRemainingColumn

from thinkscope.core.progress import (
    ENV,
    LoggedProgress,
    RateColumn,
    progress_bar,
    progress_enabled,
)

SRC = Path(__file__).parents[1] / "src" / "thinkscope"


def test_rate_column_prefers_the_callers_rate_then_rich_speed():
    clock = [0.0]
    progress = Progress(RateColumn("samples"), get_time=lambda: clock[0], disable=True)
    given = progress.add_task("a", total=10, rate="12.5 tok/s")
    estimated = progress.add_task("b", total=10)
    column = progress.columns[0]
    assert column.render(progress.tasks[given]).plain == "samples 12.5 tok/s"
    assert column.render(progress.tasks[estimated]).plain == "samples "
    for _ in range(4):  # 2 units every 0.5 s: 4 units/s
        clock[0] += 0.5
        progress.advance(estimated, 2)
    assert column.render(progress.tasks[estimated]).plain == "samples 4.00/s"


@pytest.mark.parametrize(
    ("show", "env", "terminal", "drawn"),
    [
        (True, None, True, True),  # a terminal: drawn
        (True, None, False, False),  # a log file or pipe: not drawn
        (True, "auto", False, False),
        (True, "yes", True, True),  # an unknown value is auto
        (True, "1", False, True),  # forced on
        (True, "0", True, False),  # forced off
        (False, "1", True, False),  # a quiet caller wins over everything
        (False, None, True, False),
    ],
)
def test_one_switch_decides_whether_progress_is_drawn(monkeypatch, show, env, terminal, drawn):
    if env is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, env)
    console = Console(file=io.StringIO(), force_terminal=terminal, force_jupyter=False)
    assert progress_enabled(show, console) is drawn


def test_progress_bar_follows_the_switch_and_draws_on_stderr(monkeypatch, capsys):
    monkeypatch.delenv(ENV, raising=False)
    bar = progress_bar("score", "traces")
    kinds = [type(c) for c in bar.columns]
    assert RateColumn in kinds and TimeRemainingColumn in kinds
    assert bar.disable  # pytest captures stderr: no terminal
    monkeypatch.setenv(ENV, "1")
    assert progress_bar("score", "traces", show=False).disable
    with progress_bar("score", "traces") as progress:
        progress.advance(progress.add_task("score", total=3), 3)
    out, err = capsys.readouterr()
    assert "score" in err and "3/3" in err and out == ""


def test_no_module_builds_its_own_progress_switch():
    """Every bar is ``progress_bar``; every other bar (the trainer's tqdm) asks
    ``progress_enabled``: nothing else constructs a rich Progress or checks for a terminal."""
    own = SRC / "core" / "progress.py"
    pattern = re.compile(r"\bProgress\(|isatty\(|is_terminal|THINKSCOPE_PROGRESS|disable_tqdm=not ")
    found = [
        f"{path.relative_to(SRC)}: {line.strip()}"
        for path in SRC.rglob("*.py")
        if path != own
        for line in path.read_text().splitlines()
        if pattern.search(line) and "progress_enabled" not in line
    ]
    assert found == []


def test_off_a_terminal_progress_reaches_the_log_as_throttled_lines(monkeypatch, capsys):
    monkeypatch.delenv(ENV, raising=False)
    clock = [0.0]
    lines = []

    def at(t: float, advance: float = 0, **fields) -> None:
        clock[0] = t
        progress.update(bar, advance=advance, **fields)
        lines.extend(capsys.readouterr().err.splitlines())

    with progress_bar("fit", "problems") as progress:  # pytest's stderr is no terminal
        assert isinstance(progress, LoggedProgress)
        progress.get_time = lambda: clock[0]
        bar = progress.add_task("fit", total=20)
        at(0, 0)  # nothing done yet (no resumed work to count): no line
        at(0, 4)  # work done before a resume, counted at once: the first line
        at(10, 2)  # throttled: at most one line every 30 s
        at(20, 2)
        at(30, 2)  # 6 units in 30 s since the first line: 0.2/s, 10 left: 50 s
        at(31, rate="7 tok/s")  # no unit completed: no line
        at(40, 2)
        at(45, 8)  # the last unit always gets its line, with the caller's rate
    assert lines == [
        "fit: 4/20 problems, elapsed 0:00:00",
        "fit: 10/20 problems, 0.20 problems/s, elapsed 0:00:30, ETA 0:00:50",
        "fit: 20/20 problems, 7 tok/s, elapsed 0:00:45",
    ]


@pytest.mark.parametrize(("show", "env"), [(False, None), (True, "0"), (False, "0")])
def test_quiet_callers_and_progress_off_print_nothing(monkeypatch, capsys, show, env):
    if env is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, env)
    with progress_bar("fit", "problems", show=show) as progress:
        assert not isinstance(progress, LoggedProgress)
        bar = progress.add_task("fit", total=3)
        for _ in range(3):
            progress.advance(bar)
    assert capsys.readouterr() == ("", "")


def test_transformers_own_loading_bar_follows_the_switch(tiny_model_dir, monkeypatch, capfd):
    """Off a terminal (pytest's captured stderr) ``load_model`` leaves no tqdm bar in the log."""
    from transformers.utils import logging

    from thinkscope.models import load_model

    monkeypatch.setenv(ENV, "auto")
    logging.enable_progress_bar()
    capfd.readouterr()
    load_model(str(tiny_model_dir), device="cpu")
    assert "Loading weights" not in capfd.readouterr().err
    assert not logging.is_progress_bar_enabled()
