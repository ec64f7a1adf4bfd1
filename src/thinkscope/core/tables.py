"""A table that fits the terminal without wrapping a cell: name columns are never cut, path
columns are shortened from the left (``…/runs/abc``), and when that is not enough the columns
marked droppable go, highest ``drop`` first, with a caption naming them."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table


@dataclass(frozen=True)
class Col:
    """One printed column: ``key`` of the record, its ``header``, how a value is shown
    (a format spec or a function; None/NaN is an em dash), and its ``role``: a ``name`` is
    never cut, a ``path`` is shortened from the left, a ``text`` may wrap, a ``number`` is
    right-aligned. A column with ``drop`` > 0 is left out when the table is too wide,
    highest first."""

    key: str
    header: str | None = None
    show: str | Callable[[Any], str] = ""
    role: Literal["name", "path", "text", "number"] = "number"
    drop: int = 0

    def cell(self, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        return self.show(value) if callable(self.show) else format(value, self.show)


def fit_table(
    rows: list[dict],
    columns: Sequence[Col],
    width: int,
    title: str | None = None,
    caption: str | None = None,
    hint: str = "",
) -> Table:
    """The rich table of ``rows`` that fits ``width`` without wrapping a cell (see the module
    docstring); ``text`` columns alone may wrap. The caption names the columns left out, then
    ``hint`` (where to find them)."""
    kept = list(columns)
    while True:
        table, spare = _build(rows, kept, width, title)
        droppable = [c for c in kept if c.drop > 0]
        if spare >= 0 or not droppable:
            break
        kept.remove(max(droppable, key=lambda c: c.drop))
    hidden = [c.header or c.key for c in columns if c not in kept]
    notes = [caption] if caption else []
    if hidden:
        notes.append(f"not shown at {width} columns: {', '.join(hidden)}{hint}")
    table.caption = "; ".join(notes) or None
    return table


def _build(rows: list[dict], columns: list[Col], width: int, title: str | None):
    """The table and its spare width (negative: too wide even with paths shortened)."""
    cells = [[c.cell(row.get(c.key)) for row in rows] for c in columns]
    paths = [i for i, c in enumerate(columns) if c.role == "path"]
    if paths:
        bare = [[""] * len(rows) if i in paths else col for i, col in enumerate(cells)]
        spare = width - _width(_table(columns, bare))
        heads = [len(columns[i].header or columns[i].key) for i in paths]
        natural = [max(map(len, cells[i]), default=0) for i in paths]
        for i, room in zip(paths, _share(natural, heads, spare), strict=True):
            cells[i] = [shorten_left(text, max(room, MIN_PATH)) for text in cells[i]]
    table = _table(columns, cells, title)
    return table, width - _width(table)


MIN_PATH = 12  # a path shortened further says nothing; drop other columns first


def _share(natural: list[int], heads: list[int], spare: int) -> list[int]:
    """Widths for the path columns: the room (their headers plus ``spare``) shared out evenly,
    a path narrower than its share giving the rest to the others; never under its header."""
    room = sum(heads) + max(spare, 0)
    widths = list(heads)
    order = sorted(range(len(natural)), key=lambda i: natural[i])
    for done, i in enumerate(order):
        widths[i] = max(heads[i], min(natural[i], room // (len(order) - done)))
        room -= widths[i]
    return widths


def shorten_left(text: str, width: int) -> str:
    """``text`` in ``width`` characters, cut from the left at a ``/`` where one is near:
    ``/home/me/work/runs/abc`` in 12 is ``…/runs/abc``."""
    if len(text) <= width:
        return text
    tail = text[len(text) - width + 1 :]
    cut = tail.find("/")
    return "…" + (tail[cut:] if 0 < cut < len(tail) - 1 else tail)


def _table(columns: Sequence[Col], cells: list[list[str]], title: str | None = None) -> Table:
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        title_justify="left",
    )
    for c, column_cells in zip(columns, cells, strict=True):
        head = c.header or c.key
        if c.role == "text":
            table.add_column(head, overflow="fold")
        elif c.role == "number":
            table.add_column(head, justify="right", no_wrap=True)
        else:
            widest = max([len(head), *map(len, column_cells)])
            table.add_column(head, no_wrap=True, min_width=widest)
    for row in zip(*cells, strict=True):
        table.add_row(*map(escape, row))
    return table


def _width(table: Table) -> int:
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum
