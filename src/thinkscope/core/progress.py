"""The one rich progress bar every long loop shows: label, bar, done/total, rate, elapsed, ETA."""

from __future__ import annotations

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


def progress_bar(label: str, unit: str, show: bool = True) -> Progress:
    """A rich ``Progress`` for ``with progress_bar("score", "traces") as progress:``; ``unit``
    names what the bar counts. ``show=False`` disables it (tests, library calls)."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not show,
    )
