"""The shared progress bar: rate from the caller's field or rich's estimate, an ETA, and the one
switch (caller, ``THINKSCOPE_PROGRESS``, terminal) that decides whether any bar is drawn."""

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress, TimeRemainingColumn

from thinkscope.core.progress import ENV, RateColumn, progress_bar, progress_enabled

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
