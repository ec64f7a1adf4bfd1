"""``profile.html``: the card as one self-contained page (figures inlined as base64 PNGs, the
style inlined; nothing is fetched when it is opened). ``profile diff`` builds its page from the
same pieces."""

from __future__ import annotations

import base64
import math
from html import escape
from importlib.resources import files
from pathlib import Path

from thinkscope.core.atomic import write_text

PAGE = "profile.html"


def number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(str(value))
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{value:,.0f}" if abs(value) >= 1 else f"{value:g}"
    return f"{value:.{digits}g}" if abs(value) >= 1000 or abs(value) < 1e-3 else f"{value:.3f}"


def stat_html(name: str, stat: dict, key: str | None = None) -> str:
    """One number as a card: value, CI, unit and n; or ``undefined`` with the reason. ``key``
    (default ``name``) is its ``data-stat`` attribute, ``SECTION.STAT`` on the card."""
    if stat["value"] is None:
        why = escape(stat["note"])
        body = f'<div class="v undefined">undefined</div><div class="why">{why}</div>'
    else:
        ci = (
            f' <span class="ci">[{number(stat["lo"])}, {number(stat["hi"])}]</span>'
            if stat["lo"] is not None
            else ""
        )
        unit = f' <span class="unit">{escape(stat["unit"])}</span>' if stat["unit"] else ""
        body = f'<div class="v">{number(stat["value"])}{unit}{ci}</div>'
        if stat["note"]:
            body += f'<div class="why">{escape(stat["note"])}</div>'
    meta = ", ".join(
        p for p in (f"n={stat['n']}" if stat["n"] is not None else "", stat["method"]) if p
    )
    return (
        f'<div class="stat" data-stat="{escape(key or name)}"><div class="k">{escape(name)}</div>'
        f'{body}<div class="meta">{escape(meta)}</div></div>'
    )


def cell_html(value) -> str:
    """A table cell: numbers right-aligned, text (a note, a token list) left-aligned."""
    text = isinstance(value, str)
    return f'<td class="text">{escape(value)}</td>' if text else f"<td>{number(value)}</td>"


def table_html(name: str, records: list[dict]) -> str:
    if not records:
        return f'<p class="empty">{escape(name)}: no rows</p>'
    columns = list(dict.fromkeys(k for row in records for k in row))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(cell_html(row.get(c)) for c in columns) + "</tr>" for row in records
    )
    return (
        f'<table class="data" data-table="{escape(name)}"><caption>{escape(name)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def figure_html(folder: Path, ref: dict) -> str:
    path = folder / ref["file"]
    caption = escape(ref["caption"])
    if not path.is_file():
        return f'<p class="missing">figure missing: {escape(ref["file"])}</p>'
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def notes_html(notes: list[str], css: str = "notes") -> str:
    if not notes:
        return ""
    return f'<ul class="{css}">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"


def section_body(folder: Path, entry: dict, prefix: str = "") -> str:
    """A section's content: its skip reason, or its numbers, tables, figures and notes
    (figures read from the profile ``folder``; each number's ``data-stat`` is ``prefix`` and
    its name)."""
    if entry["skipped"]:
        return f'<p class="skipped">Not measured: {escape(entry["skipped"])}</p>'
    stats = "".join(stat_html(k, v, prefix + k) for k, v in entry["stats"].items())
    tables = "".join(table_html(k, v) for k, v in entry["tables"].items())
    figures = "".join(figure_html(folder, f) for f in entry["figures"])
    return (
        (f'<div class="stats">{stats}</div>' if stats else "")
        + notes_html(entry["notes"])
        + (f'<div class="figures">{figures}</div>' if figures else "")
        + tables
    )


def section_html(folder: Path, name: str, entry: dict) -> str:
    """A section of the card under its title."""
    return (
        f'<section id="{escape(name)}" data-section="{escape(name)}">'
        f"<h2>{escape(entry['title'])}</h2>{section_body(folder, entry, f'{name}.')}</section>"
    )


def document(title: str, header: str, body: str) -> str:
    style = files("thinkscope.profile").joinpath("page.css").read_text(encoding="utf-8")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{style}</style></head>"
        f"<body><header>{header}</header><main>{body}</main></body></html>"
    )


def card_header(card: dict) -> str:
    model, protocol, machine = card["model"], card["protocol"], card["machine"]
    timing = card["timing"]
    run = protocol["run"]
    items = [
        ("model", model["model"]),
        ("weights", model.get("weights")),
        ("dtype", model.get("dtype")),
        ("budget", f"{protocol['budget']} (protocol v{protocol['version']})"),
        ("task", f"{run['task']}: {run['questions']} questions x {run['n']} samples"),
        ("sampling", f"T={run['temperature']}, {run['max_new_tokens']} tokens, seed {run['seed']}"),
        ("machine", f"{machine.get('cpu')}; GPUs: {', '.join(machine.get('gpus') or []) or '-'}"),
        ("created", card["created"]),
        ("wall time", f"{timing['total_s']:.0f} s (base run {timing['base_s']:.0f} s)"),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in items)
    nav = "".join(
        f'<a href="#{escape(name)}">{escape(entry["title"])}</a>'
        for name, entry in card["sections"].items()
    )
    return (
        f"<h1>How {escape(str(model['model']))} thinks</h1>"
        f'<table class="kv">{rows}</table><nav>{nav}</nav>'
    )


def render_card(folder: Path, card: dict) -> str:
    body = "".join(section_html(folder, k, v) for k, v in card["sections"].items())
    return document(f"thinkscope profile: {card['model']['model']}", card_header(card), body)


def write_page(folder: Path, card: dict) -> Path:
    target = folder / PAGE
    write_text(target, render_card(folder, card))
    return target
