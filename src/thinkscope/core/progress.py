"""The one rich progress bar every long loop shows: label, bar, done/total, rate, elapsed, ETA,
and the one switch that decides whether it is drawn (:func:`progress_enabled`)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

ENV = "THINKSCOPE_PROGRESS"
"""``auto`` (default; any other value too): bars on a terminal; ``1``: always; ``0``: never."""


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


def progress_bar(label: str, unit: str, show: bool = True) -> Progress:
    """A rich ``Progress`` on stderr for ``with progress_bar("score", "traces") as progress:``;
    ``unit`` names what the bar counts; drawn when :func:`progress_enabled` says so."""
    console = Console(stderr=True)
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not progress_enabled(show, console),
    )
