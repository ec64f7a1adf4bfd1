"""A command's table, for a person or for a script: ``--format table`` (the default) prints a
rich table that fits the terminal (:func:`thinkscope.core.tables.fit_table`); ``json`` (a list
of records) and ``csv`` print the exact values on stdout, and the command's messages go to
stderr (:func:`messages`)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from rich.console import Console

from thinkscope.cli.options import option_block
from thinkscope.core.tables import Col, fit_table

if TYPE_CHECKING:
    import pandas as pd


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


#: The one ``--format`` option of every command that prints a table; the command receives it
#: as ``fmt``.
format_option = option_block(
    {
        "format": (
            Format,
            Format.table,
            "table (for a person), json (a list of records) or csv: exact values on stdout "
            "for scripts, messages on stderr.",
        )
    },
    "fmt",
    build=lambda format: Format(format),
)


def messages(fmt: Format) -> Console:
    """Where a command's messages go: stdout under its table, stderr when stdout is data."""
    return Console(stderr=fmt is not Format.table)


def records(rows: pd.DataFrame | Sequence[Mapping]) -> list[dict]:
    """Rows as plain records: Python scalars, NaN as None (valid JSON)."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict(orient="records")
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # a numpy scalar or array
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def print_table(
    rows: pd.DataFrame | Sequence[Mapping],
    fmt: Format,
    columns: Sequence[Col] | None = None,
    *,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print ``rows`` as ``fmt``: json/csv carry every field exactly; the table shows
    ``columns`` (default: :func:`infer_columns`)."""
    rows = records(rows)
    if fmt is Format.json:
        _write(json.dumps(rows, allow_nan=False, default=str))
    elif fmt is Format.csv:
        _write(_csv(rows))
    else:
        columns = columns or infer_columns(rows)
        console = console or Console()
        hint = " (see --format csv)"
        console.print(fit_table(rows, columns, console.width, title=title, hint=hint))


def infer_columns(rows: pd.DataFrame | Sequence[Mapping], floats: str = ".4g") -> list[Col]:
    """Columns from each field's first value that is not None: a string is a name, a float is
    shown as ``floats``, an integer as is, anything else as wrapping text."""
    rows = records(rows)
    keys = dict.fromkeys(key for row in rows for key in row)
    columns = []
    for key in keys:
        value = next((row[key] for row in rows if row.get(key) is not None), None)
        if isinstance(value, str):
            columns.append(Col(key, role="name"))
        elif isinstance(value, float):
            columns.append(Col(key, show=floats))
        elif isinstance(value, int) and not isinstance(value, bool):
            columns.append(Col(key))
        else:
            columns.append(Col(key, show=str, role="text"))
    return columns


def print_tables(
    tables: Mapping[str, pd.DataFrame | Sequence[Mapping]],
    fmt: Format,
    columns: Mapping[str, Sequence[Col]] | None = None,
    console: Console | None = None,
) -> None:
    """Several named tables: json is ``{name: records}``; csv is one table with a first column
    ``table`` naming each row's table; a person sees each under its name."""
    if fmt is Format.json:
        _write(json.dumps({k: records(v) for k, v in tables.items()}, allow_nan=False, default=str))
    elif fmt is Format.csv:
        _write(_csv([{"table": k, **row} for k, v in tables.items() for row in records(v)]))
    else:
        for name, rows in tables.items():
            print_table(rows, fmt, (columns or {}).get(name), title=name, console=console)


def print_mapping(mapping: Mapping[str, Any], fmt: Format, console: Console | None = None) -> None:
    """A key/value summary: json is one object; csv has columns key,value; a person sees two
    columns, numbers to 4 decimals and paths shortened from the left."""
    if fmt is Format.json:
        _write(json.dumps({k: _plain(v) for k, v in mapping.items()}, allow_nan=False, default=str))
    elif fmt is Format.csv:
        _write(_csv([{"key": k, "value": v} for k, v in mapping.items()]))
    else:
        console = console or Console()
        rows = [{"key": k.replace("_", " "), "value": v} for k, v in mapping.items()]
        value = Col("value", show=_summary_value, role="path")
        table = fit_table(rows, [Col("key", role="name"), value], console.width)
        table.show_header, table.box = False, None
        console.print(table)


def _summary_value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _csv(rows: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)
