"""The one rich progress bar every long loop shows: label, bar, done/total, rate, elapsed, ETA,
and the one switch that decides whether it is drawn (:func:`progress_enabled`). Where it is not
drawn only because stderr is no terminal (nohup, CI, a batch scheduler), the same progress
reaches the log as plain lines (:class:`LoggedProgress`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

ENV = "THINKSCOPE_PROGRESS"
"""``auto`` (default; any other value too): bars on a terminal, plain lines elsewhere; ``1``:
always bars; ``0``: nothing."""

LOG_EVERY_S = 30.0
"""Off a terminal, at most one progress line per task every this many seconds (plus the first
and the last)."""


class RateColumn(ProgressColumn):
    """``{unit} {rate}``: the task's ``rate`` field when the caller sets one (e.g. tokens/s, or a
    rate that leaves out resumed work), else rich's own estimate of completed units per second."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        if rate is None:
            rate = f"{task.speed:.2f}/s" if task.speed else ""
        return Text(f"{self.unit} {rate}")


def progress_enabled(show: bool = True, console: Console | None = None) -> bool:
    """Whether to draw progress: never when the caller is quiet (``show=False``: tests, library
    calls, a stage inside another); else as ``THINKSCOPE_PROGRESS`` says (``1``/``0``); else
    (``auto``) only on a terminal or in Jupyter (``console``, default stderr), never into a
    log file or a pipe."""
    if not show:
        return False
    value = os.environ.get(ENV, "auto").strip()
    if value in ("0", "1"):
        return value == "1"
    console = console or Console(stderr=True)
    return console.is_terminal or console.is_jupyter


@dataclass
class _Logged:
    start: float  # time and count at the first completed unit: the rate leaves out resumed work
    start_completed: float
    completed: float
    printed: float


class LoggedProgress(Progress):
    """A ``Progress`` that is never drawn but writes a plain line to stderr when a unit of work
    completes, at most one every :data:`LOG_EVERY_S` seconds besides the first and the last:
    ``generate: 40/80 samples, 12.3 tok/s, elapsed 0:01:05, ETA 0:01:05``. The rate is the
    caller's ``rate`` field when set, else units per second since the first line (so work
    counted at once on a resume does not inflate it); the ETA follows from the latter."""

    def __init__(self, *columns, label: str, unit: str, **kwargs) -> None:
        super().__init__(*columns, disable=True, **kwargs)
        self.label, self.unit = label, unit
        self._logged: dict[TaskID, _Logged] = {}

    def update(self, task_id: TaskID, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        task, now = self._tasks[task_id], self.get_time()
        seen = self._logged.get(task_id)
        if task.completed == (seen.completed if seen else 0):
            return  # no unit completed (e.g. only the rate field changed)
        if seen is None:
            seen = self._logged[task_id] = _Logged(now, task.completed, task.completed, now)
        elif not task.finished and now - seen.printed < LOG_EVERY_S:
            seen.completed = task.completed
            return
        seen.completed, seen.printed = task.completed, now
        total = "?" if task.total is None else f"{task.total:g}"
        parts = [f"{self.label}: {task.completed:g}/{total} {self.unit}"]
        speed = (
            (task.completed - seen.start_completed) / (now - seen.start) if now > seen.start else 0
        )
        if task.fields.get("rate"):
            parts.append(str(task.fields["rate"]))
        elif speed:
            parts.append(f"{speed:.2f} {self.unit}/s")
        parts.append(f"elapsed {_clock(task.elapsed or 0)}")
        if speed and task.total is not None and not task.finished:
            parts.append(f"ETA {_clock((task.total - task.completed) / speed)}")
        print(", ".join(parts), file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def progress_bar(label: str, unit: str, show: bool = True) -> Progress:
    """A rich ``Progress`` on stderr for ``with progress_bar("score", "traces") as progress:``;
    ``unit`` names what the bar counts; drawn when :func:`progress_enabled` says so, else (off
    a terminal, unless ``show=False`` or ``THINKSCOPE_PROGRESS=0``) a :class:`LoggedProgress`."""
    console = Console(stderr=True)
    drawn = progress_enabled(show, console)
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    if show and not drawn and os.environ.get(ENV, "auto").strip() != "0":
        return LoggedProgress(*columns, console=console, label=label, unit=unit)
    return Progress(*columns, console=console, disable=not drawn)
