"""The comparison figure (matplotlib, Agg) and its self-contained HTML page."""

from __future__ import annotations

import base64
import math
from datetime import datetime, timezone
from html import escape
from importlib.resources import files

import numpy as np
from matplotlib.figure import Figure

from thinkscope.analyze.figures import CORRECT, NEUTRAL, STYLE, WRONG
from thinkscope.runstore.atomic import atomic_write, write_text

FIGURE = "figures/compare.png"


def write_figure(result) -> None:
    """Left: accuracy, pass@k and greedy accuracy of both models. Right: each question's
    accuracy, base against tuned (points above the diagonal are the tuned model's wins)."""
    import matplotlib

    summary, questions = result.summary, result.questions
    bars = [c for c in summary.columns if c == "accuracy" or c.startswith("pass@")]
    bars.append("greedy_accuracy")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(10, 4), layout="constrained")
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        x = np.arange(len(bars))
        for i, colour in enumerate((NEUTRAL, CORRECT)):
            row = summary.iloc[i]
            left.bar(
                x + (i - 0.5) * 0.4, row[bars].astype(float), 0.4, color=colour, label=row["model"]
            )
        left.set_xticks(x, [b.replace("_", " ") for b in bars])
        left.set_ylim(0, 1)
        left.set_ylabel("fraction correct")
        left.set_title("Accuracy")
        left.legend()
        jitter = np.random.default_rng(0).uniform(-0.015, 0.015, size=(2, len(questions)))
        colours = questions["winner"].map({"tuned": CORRECT, "base": WRONG, "tie": NEUTRAL})
        right.scatter(
            questions["base"] + jitter[0],
            questions["tuned"] + jitter[1],
            c=colours,
            s=18,
            alpha=0.8,
        )
        right.plot([0, 1], [0, 1], color=NEUTRAL, linewidth=0.8)
        right.set_xlabel("base accuracy per question")
        right.set_ylabel("tuned accuracy per question")
        wins = questions["winner"].value_counts()
        right.set_title(f"Per question: {wins.get('tuned', 0)} wins, {wins.get('base', 0)} losses")
        atomic_write(result.path / FIGURE, lambda tmp: fig.savefig(tmp, format="png"))


def _fmt(value) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return escape(str(value))


def write_page(result, config) -> None:
    """``OUT/report.html``: the table, the test, the figure and links to both runs."""
    table = result.summary
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    test = result.mcnemar
    kind = "exact binomial" if test.exact else "chi-square, continuity-corrected"
    wins = result.questions["winner"].value_counts()
    image = base64.b64encode((result.path / FIGURE).read_bytes()).decode()
    style = files("thinkscope.report").joinpath("style.css").read_text(encoding="utf-8")
    setup = (
        f"{config.questions} questions of {config.task}, {config.n} samples each at T="
        f"{config.temperature} (same problems and sample seeds for both models), plus one greedy "
        f"sample per question; prompt {config.prompt_style}/{config.template}."
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>thinkscope compare: {escape(result.path.name)}</title><style>{style}</style></head>
<body><main><h1>Base versus tuned</h1>
<p class="caption">{escape(setup)} Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}.</p>
<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Paired greedy correctness</h2>
<p>both right {test.both}, base only {test.base_only}, tuned only {test.tuned_only},
neither {test.neither}; McNemar ({kind}): statistic {test.statistic:.3f},
p = {test.pvalue:.3g}.</p>
<p>Per question (sampled accuracy): tuned wins {wins.get("tuned", 0)}, base wins
{wins.get("base", 0)}, ties {wins.get("tie", 0)}.</p>
<figure><img alt="comparison" src="data:image/png;base64,{image}">
<figcaption>Accuracy and pass@k of both models; each question's accuracy, base against tuned.
</figcaption></figure>
<p>Run folders (open them with <code>thinkscope report</code>):
<code>{escape(str(result.path / "runs"))}</code></p></main></body></html>
"""
    write_text(result.path / "report.html", page)
