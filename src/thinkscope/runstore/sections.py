"""Extra report sections that other stages add to a run (decoding, comparisons, REV, ...).

A stage calls :func:`add_section` with its figures (files inside the run folder) and small
tables; ``thinkscope report`` renders every section of the run after the main figures, in
name order. Sections are JSON files under ``RUN/report_sections/`` so a stage and the report
stay independent::

    add_section(run, "decoding", "Decoding", figures=[(path, caption)], tables={"cap": df})
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import pandas as pd

from thinkscope.core.atomic import write_json

FOLDER = "report_sections"


def add_section(
    run: Path | str,
    name: str,
    title: str,
    figures: list[tuple[Path, str]] = (),
    tables: dict[str, pd.DataFrame] | None = None,
    text: str = "",
) -> Path:
    """Record (or replace) the section ``name`` of the run at ``run``; figures must lie in it."""
    run = Path(run)
    section = {
        "title": title,
        "text": text,
        "figures": [
            {"file": str(Path(path).resolve().relative_to(run.resolve())), "caption": caption}
            for path, caption in figures
        ],
        "tables": [
            {"caption": caption, "columns": list(map(str, t.columns)), "rows": _rows(t)}
            for caption, t in (tables or {}).items()
        ],
    }
    path = run / FOLDER / f"{name}.json"
    write_json(path, section)
    return path


def _rows(table: pd.DataFrame) -> list[list]:
    return json.loads(table.to_json(orient="values", double_precision=4))


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape('—' if value is None else str(value))}</td>"


def render_sections(run: Path) -> str:
    """The HTML of every recorded section of ``run`` (empty when there are none)."""
    out = []
    for path in sorted((run / FOLDER).glob("*.json")):
        section = json.loads(path.read_text(encoding="utf-8"))
        parts = [f"<h2>{escape(section['title'])}</h2>"]
        if section.get("text"):
            parts.append(f"<p>{escape(section['text'])}</p>")
        for table in section.get("tables", []):
            head = "".join(f"<th>{escape(c)}</th>" for c in table["columns"])
            body = "".join(
                "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table["rows"]
            )
            parts.append(
                f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                f'</table><p class="caption">{escape(table["caption"])}</p>'
            )
        figures = []
        for figure in section.get("figures", []):
            file = run / figure["file"]
            if not file.is_file():
                continue
            data = base64.b64encode(file.read_bytes()).decode()
            caption = escape(figure["caption"])
            figures.append(
                f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        if figures:
            parts.append(f'<div class="figures">{"".join(figures)}</div>')
        out.append(f'<section id="section-{escape(path.stem)}">{"".join(parts)}</section>')
    return "".join(out)
