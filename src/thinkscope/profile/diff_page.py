"""``diff.html``: two cards side by side, section by section, under each section's verdict and
deltas table, then the cross-model CKA; self-contained like ``profile.html``, from its pieces."""

from __future__ import annotations

from html import escape
from pathlib import Path

from thinkscope.core.atomic import write_text
from thinkscope.profile.page import document, figure_html, number, section_body, table_html

DIFF_PAGE = "diff.html"


def _signed(value) -> str:
    return "—" if value is None else f"{value:+.3g}"


def deltas_html(deltas: dict, calls: dict) -> str:
    """Every stat both cards define: A, B, B - A, its CI and the test (headline stats first)."""
    if not deltas:
        return ""
    rows = []
    for name in sorted(deltas, key=lambda k: k not in calls):
        d = deltas[name]
        lo, hi = d["lo"], d["hi"]
        css = "up" if lo is not None and lo > 0 else "down" if hi is not None and hi < 0 else ""
        ci = "—" if lo is None else f"[{number(lo)}, {number(hi)}]"
        cells = (number(d["a"]), number(d["b"]), _signed(d["delta"]), ci)
        rows.append(
            f'<tr data-stat="{escape(name)}"><th>{escape(name)}</th>'
            + "".join(f"<td>{c}</td>" for c in cells[:2])
            + f'<td class="{css}">{cells[2]}</td><td>{cells[3]}</td>'
            + f'<td class="text">{escape(d["method"] or "none")}</td>'
            + f'<td class="text">{escape(d["note"])}</td></tr>'
        )
    head = "".join(f"<th>{h}</th>" for h in ("stat", "A", "B", "B − A", "95% CI", "test", "note"))
    return (
        '<table class="data" data-table="deltas"><caption>B − A</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _side(folder: Path, label: str, entry: dict | None, prefix: str) -> str:
    """One card's section (``data-stat`` of its numbers: ``prefix`` and the stat's name)."""
    body = (
        section_body(folder, entry, prefix) if entry else '<p class="skipped">Not in this card.</p>'
    )
    return f"<div><h3>{escape(label)}</h3>{body}</div>"


def diff_section_html(name: str, entry: dict, card_a: dict, card_b: dict, data: dict) -> str:
    """One section: the verdict, the deltas, the notes, then card A beside card B (their
    numbers' ``data-stat`` is ``A.SECTION.STAT`` and ``B.SECTION.STAT``)."""
    notes = "".join(f"<li>{escape(n)}</li>" for n in entry["notes"])
    sides = "".join(
        _side(
            Path(data[side]["folder"]),
            f"{side.upper()}: {data[side]['model']['model']}",
            card["sections"].get(name),
            f"{side.upper()}.{name}.",
        )
        for side, card in (("a", card_a), ("b", card_b))
    )
    return (
        f'<section id="{escape(name)}" data-section="{escape(name)}">'
        f"<h2>{escape(entry['title'])}</h2>"
        f'<p class="verdict">{escape(entry["verdict"])}</p>'
        + deltas_html(entry["deltas"], entry["calls"])
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
        + f'<div class="side">{sides}</div></section>'
    )


def cka_html(folder: Path, cka: dict) -> str:
    """The CKA heatmap and its diagonal, or why there is none."""
    if cka["matrix"] is None:
        inner = f'<p class="skipped">Cross-model CKA {escape(cka["note"])}</p>'
    else:
        caption = (
            f"Linear CKA between every block output of A (rows) and B (columns) on the "
            f"completion-mean states of {cka['inputs']} traces of A's base run."
        )
        inner = figure_html(folder, {"file": cka["figure"], "caption": caption})
        if cka["diagonal"] is not None:
            rows = [
                {"layer": layer, "cka": value}
                for layer, value in zip(cka["layers_a"], cka["diagonal"], strict=True)
            ]
            inner += table_html("CKA, same layer", rows)
        if cka["note"]:
            inner += f'<ul class="notes"><li>{escape(cka["note"])}</li></ul>'
    return f'<section id="cka" data-section="cka"><h2>Cross-model CKA</h2>{inner}</section>'


def diff_header(data: dict) -> str:
    run = data["protocol"]["run"]
    items = [
        (
            f"{side.upper()}",
            f"{c['model']['model']} (weights {c['model'].get('weights')}), "
            f"card of {c['created']}, {c['folder']}",
        )
        for side, c in (("a", data["a"]), ("b", data["b"]))
    ] + [
        ("budget", f"{data['protocol']['budget']} (protocol v{data['protocol']['version']})"),
        ("task", f"{run['task']}: {run['questions']} questions x {run['n']} samples"),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in items)
    nav = "".join(
        f'<a href="#{escape(k)}">{escape(v["title"])}</a>' for k, v in data["sections"].items()
    )
    title = f"{data['a']['model']['model']} (A) vs {data['b']['model']['model']} (B)"
    return (
        f"<h1>What changed: {escape(title)}</h1>"
        f'<table class="kv">{rows}</table><nav>{nav}<a href="#cka">Cross-model CKA</a></nav>'
    )


def write_diff_page(folder: Path, data: dict, card_a: dict, card_b: dict) -> Path:
    """Write ``diff.html`` into ``folder`` (where the CKA figure is)."""
    body = "".join(
        diff_section_html(name, entry, card_a, card_b, data)
        for name, entry in data["sections"].items()
    ) + cka_html(folder, data["cka"])
    title = (
        f"thinkscope profile diff: {data['a']['model']['model']} vs {data['b']['model']['model']}"
    )
    target = folder / DIFF_PAGE
    write_text(target, document(title, diff_header(data), body))
    return target
