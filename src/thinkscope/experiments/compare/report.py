"""The comparison figure (matplotlib, Agg), its self-contained HTML page, and its section in
the tuned run's report (``thinkscope report RUN``)."""

from __future__ import annotations

import base64
import math
import shutil
from datetime import datetime, timezone
from html import escape
from importlib.resources import files
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from thinkscope.core.atomic import atomic_write, write_text
from thinkscope.core.figures import CORRECT, NEUTRAL, STYLE, WRONG
from thinkscope.runstore.sections import FOLDER, add_section

FIGURE = "figures/compare.png"


def write_figure(result) -> None:
    """Left: mean sample accuracy, pass@k and greedy accuracy of both models. Right: each
    question's mean sample accuracy, base against tuned (points above the diagonal are the
    tuned model's wins)."""
    import matplotlib

    summary, questions = result.summary, result.questions
    bars = [c for c in summary.columns if c == "mean_sample_accuracy" or c.startswith("pass@")]
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
        right.set_xlabel("base mean sample accuracy per question")
        right.set_ylabel("tuned mean sample accuracy per question")
        wins = questions["winner"].value_counts()
        right.set_title(f"Per question: {wins.get('tuned', 0)} wins, {wins.get('base', 0)} losses")
        atomic_write(result.path / FIGURE, lambda tmp: fig.savefig(tmp, format="png"))


def _fmt(value) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return escape(str(value))


def _setup(config) -> str:
    return (
        f"{config.questions} questions of {config.task}, {config.n} samples each at T="
        f"{config.temperature} (same problems and sample seeds for both models), plus one greedy "
        f"sample per question; prompt {config.prompt_style}/{config.template}."
    )


def _kind(test) -> str:
    return "exact binomial" if test.exact else "chi-square, continuity-corrected"


def add_report_section(result, config, run: Path) -> None:
    """The comparison's table, test and figure as the section ``compare`` of ``run``'s report
    (the tuned model's sampled run); the figure is copied into the run."""
    figure = run / FOLDER / "compare" / "compare.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(figure, lambda tmp: shutil.copyfile(result.path / FIGURE, tmp))
    test = result.mcnemar
    wins = result.questions["winner"].value_counts()
    text = (
        f"{_setup(config)} Paired greedy correctness: both right {test.both}, base only "
        f"{test.base_only}, tuned only {test.tuned_only}, neither {test.neither}; McNemar "
        f"({_kind(test)}) p = {test.pvalue:.3g}. Per question: tuned wins "
        f"{wins.get('tuned', 0)}, base wins {wins.get('base', 0)}, ties {wins.get('tie', 0)}. "
        f"Full comparison: {result.path}."
    )
    caption = (
        "Mean sample accuracy and pass@k of both models; each question's mean sample accuracy, "
        "base against tuned."
    )
    tables = {"Base and tuned model": result.summary}
    add_section(run, "compare", "Base versus tuned", [(figure, caption)], tables, text)


def write_page(result, config) -> None:
    """``OUT/report.html``: the table, the test, the figure and links to both runs."""
    table = result.summary
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    test = result.mcnemar
    kind = _kind(test)
    wins = result.questions["winner"].value_counts()
    image = base64.b64encode((result.path / FIGURE).read_bytes()).decode()
    style = files("thinkscope.analysis").joinpath("style.css").read_text(encoding="utf-8")
    setup = _setup(config)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>thinkscope compare: {escape(result.path.name)}</title><style>{style}</style></head>
<body><main><h1>Base versus tuned</h1>
<p class="caption">{escape(setup)} Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}.</p>
<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Paired greedy correctness</h2>
<p>both right {test.both}, base only {test.base_only}, tuned only {test.tuned_only},
neither {test.neither}; McNemar ({kind}): statistic {test.statistic:.3f},
p = {test.pvalue:.3g}.</p>
<p>Per question (mean sample accuracy): tuned wins {wins.get("tuned", 0)}, base wins
{wins.get("base", 0)}, ties {wins.get("tie", 0)}.</p>
<figure><img alt="comparison" src="data:image/png;base64,{image}">
<figcaption>Mean sample accuracy and pass@k of both models; each question's mean sample
accuracy, base against tuned.</figcaption></figure>
<p>Run folders (open them with <code>thinkscope report</code>):
<code>{escape(str(result.path / "runs"))}</code></p></main></body></html>
"""
    write_text(result.path / "report.html", page)
