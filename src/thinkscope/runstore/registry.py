"""A SQLite registry of runs: ``thinkscope runs list | show | diff``."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from thinkscope.core.errors import UserError
from thinkscope.core.paths import cache_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}'
)
"""


def registry_path() -> Path:
    return cache_dir() / "registry.sqlite"


def _connect() -> sqlite3.Connection:
    registry_path().parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(registry_path(), timeout=30)
    db.execute(_SCHEMA)
    return db


def record(path: Path, kind: str, created: str, status: str, config: dict, summary: dict) -> None:
    """Insert or update the registry row of the run at ``path``."""
    with closing(_connect()) as db, db:
        db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
            "kind = excluded.kind, created = excluded.created, status = excluded.status, "
            "config = excluded.config, summary = excluded.summary",
            (str(path.resolve()), kind, created, status, json.dumps(config), json.dumps(summary)),
        )


def add_summary(path: Path, summary: dict) -> None:
    """Merge ``summary`` into the registry row of the run at ``path`` (a stage such as
    ``score`` added to it); nothing when the run is not registered here."""
    key = str(path.resolve())
    with closing(_connect()) as db, db:
        row = db.execute("SELECT summary FROM runs WHERE path = ?", (key,)).fetchone()
        if row is not None:
            merged = json.dumps({**json.loads(row[0]), **summary})
            db.execute("UPDATE runs SET summary = ? WHERE path = ?", (merged, key))


def list_runs() -> list[dict]:
    """Every registered run, oldest first (reading creates no registry)."""
    if not registry_path().is_file():
        return []
    with closing(_connect()) as db:
        rows = db.execute(
            "SELECT path, kind, created, status, config, summary FROM runs ORDER BY created"
        ).fetchall()
    return [
        {
            "id": i + 1,
            "path": p,
            "kind": k,
            "created": c,
            "status": s,
            "config": json.loads(cfg),
            "summary": json.loads(summ),
        }
        for i, (p, k, c, s, cfg, summ) in enumerate(rows)
    ]


def find_run(ref: str) -> dict:
    """A run by its list number or its folder path."""
    runs = list_runs()
    if ref.isdigit() and 1 <= int(ref) <= len(runs):
        return runs[int(ref) - 1]
    wanted = str(Path(ref).resolve())
    for run in runs:
        if run["path"] == wanted:
            return run
    raise UserError(f"no registered run {ref!r}; see `thinkscope runs list`")


#: Config keys ``runs diff`` shows even when equal: which model, in which dtype, which weights.
IDENTITY = ("config.model", "config.dtype", "config.weights")


def diff(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """The model's identity (:data:`IDENTITY`), then the config and summary keys on which two
    runs of one kind differ: ``(key, value_a, value_b)``; a :class:`UserError` for two kinds."""
    if a["kind"] != b["kind"]:
        raise UserError(
            f"{a['path']} is a {a['kind']} run and {b['path']} a {b['kind']} run: "
            "`runs diff` compares two runs of one kind"
        )
    flat_a = {
        **{f"config.{k}": v for k, v in a["config"].items()},
        **{f"summary.{k}": v for k, v in a["summary"].items()},
    }
    flat_b = {
        **{f"config.{k}": v for k, v in b["config"].items()},
        **{f"summary.{k}": v for k, v in b["summary"].items()},
    }
    differing = [k for k in sorted(flat_a.keys() | flat_b.keys()) if flat_a.get(k) != flat_b.get(k)]
    keys = [*IDENTITY, *(k for k in differing if k not in IDENTITY)]
    return [(k, flat_a.get(k), flat_b.get(k)) for k in keys]


#: The registry's own columns, before the flattened ``config.*`` and ``summary.*`` ones.
COLUMNS = ("id", "path", "kind", "created", "status")


def flat_runs() -> tuple[list[str], list[dict]]:
    """Every registered run as one flat row (:data:`COLUMNS`, then ``config.KEY`` and
    ``summary.KEY``; a nested value as JSON), and the columns in order."""
    rows = []
    for run in list_runs():
        row = {k: run[k] for k in COLUMNS}
        for section in ("config", "summary"):
            for key, value in run[section].items():
                plain = isinstance(value, str | int | float | bool) or value is None
                row[f"{section}.{key}"] = value if plain else json.dumps(value)
        rows.append(row)
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    return [*COLUMNS, *extra], rows


def best_run(by: str) -> tuple[str, dict]:
    """The run with the highest numeric value of the column ``by`` (``summary.delta_auc``, or
    a bare ``delta_auc`` for its ``summary.`` then its ``config.`` column) and that column's
    name; a :class:`UserError` naming the columns when there is no such column."""
    columns, rows = flat_runs()
    column = next((c for c in (by, f"summary.{by}", f"config.{by}") if c in columns), None)
    if column is None:
        raise UserError(f"--by {by!r} is not a registry column; there are: {', '.join(columns)}")
    numeric = [
        row
        for row in rows
        if isinstance(row.get(column), int | float)
        and not isinstance(row[column], bool)
        and row[column] == row[column]  # not NaN
    ]
    if not numeric:
        raise UserError(f"no registered run has a number in {column}")
    return column, max(numeric, key=lambda row: row[column])
