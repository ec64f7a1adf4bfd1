"""``thinkscope report DIR``: one self-contained, offline ``report.html``.

The page is ``template.html`` with ``style.css`` and ``viewer.js`` inlined, the figures as
base64 PNGs and the trace data as inline JSON; nothing is fetched when it is opened.
Static parts (summary, metric table, figures) are rendered here, so they read without JS.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from importlib.resources import files
from pathlib import Path

from thinkscope.analysis.load import ScoredRun, load_scored, load_token_metrics
from thinkscope.analysis.run import analyze_run
from thinkscope.analysis.viewer import load_run_tokenizer, viewer_data
from thinkscope.core.atomic import atomic_write
from thinkscope.runstore.sections import render_sections

CAPTIONS = {
    "auroc.png": "AUROC of each metric for predicting a correct answer, with its bootstrap CI.",
    "accuracy_by_dtr_quintile.png": "Accuracy of the samples in each DTR quintile.",
    "settling_depth.png": "Layer at which each token's prediction settles, correct vs wrong.",
    "jsd_by_layer.png": "JSD between each layer's prediction and the final one, per layer.",
    "dtr_vs_length.png": "DTR against completion length: is deep thinking just long thinking?",
}
TABLE = [
    ("metric", "metric"),
    ("n", "n"),
    ("n_nan", "NaN"),
    ("auroc", "AUROC [95% CI]"),
    ("r_binned", "r binned"),
    ("partial_r", "partial r"),
    ("partial_p", "partial p"),
    ("delong_p_vs_dtr", "DeLong p vs dtr"),
    ("note", "note"),
]


@dataclass
class Report:
    """Where :func:`build_report` wrote the page, and what the user should be told."""

    path: Path
    n_traces: int
    reanalysed: bool
    notices: list[str]


def _fmt(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec) if isinstance(value, float) else str(value)


def _analysis(scored: ScoredRun) -> tuple[dict, bool]:
    """``analysis/metrics.json``, recomputed when missing or older than the scores."""
    path = scored.path / "analysis" / "metrics.json"
    inputs = [scored.path / "traces.parquet", scored.path / "scores.json"]
    stale = not path.is_file() or path.stat().st_mtime < max(p.stat().st_mtime for p in inputs)
    if stale:
        analyze_run(scored.path)
    return json.loads(path.read_text(encoding="utf-8")), stale


def _summary(scored: ScoredRun, analysis: dict, n_layers: int | None) -> str:
    config, timing = scored.run.config, scored.run.timing
    traces = scored.traces
    tps = timing.get("tokens_per_s")
    params = scored.dtr_params if scored.dtr_column else {}
    scorers = {str(e["model"]) for e in scored.metrics.values() if e.get("model")}
    items = [
        ("model", config.get("model")),
        ("task", config.get("task")),
        ("traces", f"{len(traces)} ({traces['problem_id'].nunique()} problems)"),
        ("accuracy", f"{scored.correct.mean():.1%} ({int(scored.correct.sum())}/{len(traces)})"),
        ("mean length", f"{traces['n_tokens'].mean():.1f} tokens"),
        ("generation", f"{tps} tokens/s" if tps is not None else "—"),
        ("layers", n_layers or "—"),
        ("DTR params", ", ".join(f"{k}={v}" for k, v in params.items()) if params else "—"),
        ("scored with", ", ".join(sorted(scorers)) or "—"),
    ]
    cards = "".join(
        f'<div class="card"><div class="k">{escape(k)}</div>'
        f'<div class="v">{escape(str(v))}</div></div>'
        for k, v in items
    )
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(json.dumps(v, default=str))}</td></tr>"
        for k, v in config.items()
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in analysis["notices"])
    return (
        f'<div class="cards">{cards}</div>'
        f'<details><summary>config.yaml</summary><table class="kv">{rows}</table></details>'
        + (f'<div class="notices"><b>Notes</b><ul>{notes}</ul></div>' if notes else "")
    )


def _cell(key: str, row: dict) -> str:
    value = row.get(key)
    if key == "auroc" and value is not None:
        lo, hi = _fmt(row["auroc_lo"], ".2f"), _fmt(row["auroc_hi"], ".2f")
        ci = f' <span class="ci">[{lo}, {hi}]</span>'
        bar = f'<span class="bar" style="width:{100 * value:.1f}%"></span>'
        return f'<td class="num auroc">{bar}<span class="val">{value:.3f}{ci}</span></td>'
    if key in ("metric", "note"):
        return f'<td class="{key}">{escape(str(value or ""))}</td>'
    spec = ".2g" if key in ("partial_p", "delong_p_vs_dtr") else ".3f"
    return f'<td class="num">{_fmt(value, spec)}</td>'


def _metric_table(analysis: dict) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for _, label in TABLE)
    body = "".join(
        "<tr>" + "".join(_cell(key, row) for key, _ in TABLE) + "</tr>"
        for row in analysis["metrics"]
    )
    settings = analysis["settings"]
    caption = (
        f"{settings['resamples']:,} bootstrap resamples; r binned: {settings['n_bins']} "
        f"quantile bins per question, {settings['seeds']} seeds; partial r controls for "
        f"length and perplexity; DeLong vs {settings['reference'] or '—'}."
    )
    return (
        f'<table class="metrics" id="metric-table"><thead><tr>{head}</tr></thead>'
        f'<tbody>{body}</tbody></table><p class="caption">{escape(caption)}</p>'
    )


def _figures(scored: ScoredRun, names: list[str]) -> str:
    out = []
    for name in names:
        data = base64.b64encode((scored.path / "analysis" / "figures" / name).read_bytes()).decode()
        caption = escape(CAPTIONS.get(name, name))
        out.append(
            f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return "".join(out) or "<p>No figures could be drawn for this run.</p>"


def _json(data: dict) -> str:
    """JSON safe inside <script>: no ``<`` can close the element or open a comment."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def render(scored: ScoredRun, analysis: dict, viewer: dict) -> str:
    """The whole page as one string."""
    assets = files("thinkscope.analysis")
    parts = {
        "title": escape(f"thinkscope report: {scored.path.name}"),
        "style": assets.joinpath("style.css").read_text(encoding="utf-8"),
        "script": assets.joinpath("viewer.js").read_text(encoding="utf-8"),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "run": escape(str(scored.path)),
        "summary": _summary(scored, analysis, viewer["n_layers"]),
        "metrics": _metric_table(analysis),
        "figures": _figures(scored, analysis["figures"]),
        "sections": render_sections(scored.path),
        "data": _json(viewer),
    }
    template = assets.joinpath("template.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)  # one pass


def build_report(path: Path | str, out: Path | str | None = None, max_traces: int = 2000) -> Report:
    """Write the report of the scored run at ``path`` (default ``DIR/report.html``)."""
    scored = load_scored(path)
    analysis, reanalysed = _analysis(scored)
    tokenizer = load_run_tokenizer(str(scored.run.config.get("model", "")))
    viewer = viewer_data(scored, load_token_metrics(scored), tokenizer, max_traces)
    target = Path(out) if out else scored.path / "report.html"
    page = render(scored, analysis, viewer)
    atomic_write(target, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    notices = [] if tokenizer else ["the run's tokenizer is unavailable: tokens shown as ids"]
    if len(viewer["traces"]) < viewer["total"]:
        notices.append(
            f"viewer shows {len(viewer['traces'])} of {viewer['total']} traces "
            "(raise --max-traces for more)"
        )
    return Report(target, len(viewer["traces"]), reanalysed, notices)
