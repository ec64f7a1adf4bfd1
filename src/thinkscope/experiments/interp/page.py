"""The summary figure and the self-contained ``interp.html`` page of ``interp run``."""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkscope.core.atomic import atomic_write, write_text
from thinkscope.core.figures import STYLE
from thinkscope.interp.cka import heatmap
from thinkscope.interp.probes import probe_figure


def summary_figure(summary: dict) -> Figure:
    """Probes by layer, direction cosine across layers, CKA diagonal, sweep vs alpha."""
    fig = Figure(figsize=(11, 8))
    (probe_ax, cos_ax), (cka_ax, sweep_ax) = fig.subplots(2, 2)
    layers = summary["layers"]
    if summary["probes"]:
        table = pd.DataFrame(summary["probes"])
        for name, lo, hi, colour in (
            ("accuracy", "acc_lo", "acc_hi", "#0072B2"),
            ("auroc", "auroc_lo", "auroc_hi", "#D55E00"),
        ):
            probe_ax.plot(table["layer"], table[name], marker="o", color=colour, label=name)
            probe_ax.fill_between(table["layer"], table[lo], table[hi], color=colour, alpha=0.2)
        probe_ax.axhline(0.5, color="#8c8c8c", lw=0.8, ls="--")
        probe_ax.legend()
    probe_ax.set(title="probe: correct vs wrong", xlabel="layer", ylim=(0, 1.02))
    image = cos_ax.imshow(
        np.array(summary["direction_cosine"]),
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        origin="lower",
        extent=(layers[0] - 0.5, layers[-1] + 0.5) * 2,
    )
    cos_ax.set(title="reasoning direction: cosine across layers", xlabel="layer", ylabel="layer")
    fig.colorbar(image, ax=cos_ax)
    cross = summary["cross_model"]
    if cross and cross.get("cka_diagonal"):
        cka_ax.plot(
            range(1, len(cross["cka_diagonal"]) + 1),
            cross["cka_diagonal"],
            marker="o",
            label="CKA (same layer)",
        )
        cka_ax.plot(layers, cross["transplant_cosine"], marker="s", label="transplant cosine")
        cka_ax.set(title=f"vs {cross['model_b']}", xlabel="layer", ylim=(-0.05, 1.05))
        cka_ax.legend()
    else:
        cka_ax.plot(layers, summary["direction_norms"], marker="o", color="#009E73")
        cka_ax.set(title="reasoning direction norm", xlabel="layer", ylabel="||mean diff||")
    sweep = pd.DataFrame(summary["sweep"])
    steer = sweep[sweep["intervention"] != "ablate"]
    sweep_ax.errorbar(
        steer["alpha"],
        steer["accuracy"],
        yerr=[steer["accuracy"] - steer["acc_lo"], steer["acc_hi"] - steer["accuracy"]],
        marker="o",
        color="#0072B2",
        label="accuracy",
        capsize=3,
    )
    dtr_ax = sweep_ax.twinx()
    dtr_ax.plot(steer["alpha"], steer["dtr"], marker="s", color="#D55E00", label="DTR")
    ablated = sweep[sweep["intervention"] == "ablate"]
    if len(ablated):
        sweep_ax.axhline(ablated["accuracy"].iloc[0], color="#0072B2", ls=":", label="ablated acc")
        dtr_ax.axhline(ablated["dtr"].iloc[0], color="#D55E00", ls=":", label="ablated DTR")
    sweep_ax.set(
        title=f"steering at layer {summary['steer_layer']}",
        xlabel="alpha",
        ylabel="accuracy",
        ylim=(0, 1.02),
    )
    dtr_ax.set_ylabel("DTR")
    handles = sweep_ax.get_legend_handles_labels()
    extra = dtr_ax.get_legend_handles_labels()
    sweep_ax.legend(handles[0] + extra[0], handles[1] + extra[1], fontsize=8)
    fig.tight_layout()
    return fig


def _save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img src="data:image/png;base64,{data}"><figcaption>{escape(caption)}'
        "</figcaption></figure>"
    )


def _table(frame: pd.DataFrame) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return "—" if math.isnan(v) else f"{v:.3f}"
        return escape(str(v))

    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


#: Generated texts shown per strength (all of them are in ``texts/*.jsonl``).
SHOWN_TEXTS = 2


def _texts(folder: Path, k: int) -> list[str]:
    """The first ``k`` generated texts of each steering strength, then of the ablation."""
    files = sorted(folder.glob("steer_*.jsonl"), key=lambda f: float(f.stem[6:]))
    files += sorted(folder.glob("ablate.jsonl"))
    if not files:
        return []
    parts = [f"<h2>Generated texts (first {k} per intervention; all in texts/)</h2>"]
    for path in files:
        rows = [json.loads(line) for line in path.read_text().splitlines()[:k]]
        label = "ablated" if path.stem == "ablate" else f"strength {rows[0]['strength']:+g}"
        parts.append(f"<h3>{escape(label)}</h3>")
        parts += [
            f"<pre>{escape(row['text'][:600])}</pre><p>correct: {row['correct']}</p>"
            for row in rows
        ]
    return parts


def write_page(out: Path, summary: dict) -> Path:
    """Write ``figures/*.png`` and ``interp.html`` (figures inlined) into ``out``."""
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    parts = [
        f"<h1>thinkscope interp: {escape(summary['model'])}</h1>",
        f"<p>preset {escape(summary['preset'])}, task {escape(summary['task'])}, "
        f"{summary['n_traces']} traces (accuracy {summary['correctness_accuracy']:.3f}), "
        f"steering layer {summary['steer_layer']}.</p>",
    ]
    with matplotlib.rc_context(STYLE):
        _save(summary_figure(summary), figures / "summary.png")
        parts.append(_img(figures / "summary.png", "Summary of the interpretability run."))
        if summary["probes"]:
            table = pd.DataFrame(summary["probes"])
            _save(probe_figure(table, "correct vs wrong"), figures / "probes.png")
            parts += ["<h2>Probes (correct vs wrong, out-of-fold)</h2>", _table(table)]
        elif summary["probe_note"]:
            parts.append(f"<p>No probes: {escape(summary['probe_note'])}</p>")
        cross = summary["cross_model"]
        if cross:
            cka = np.array(cross["cka"])
            fig = heatmap(
                cka,
                range(1, cka.shape[0] + 1),
                range(1, cka.shape[1] + 1),
                summary["model"],
                cross["model_b"],
            )
            _save(fig, figures / "cka.png")
            parts.append(_img(figures / "cka.png", "Layer-by-layer linear CKA."))
    parts += ["<h2>Intervention sweep</h2>", _table(pd.DataFrame(summary["sweep"]))]
    parts += _texts(out / "texts", SHOWN_TEXTS)
    lens_rows = [
        {
            "layer": layer,
            "top": " ".join(repr(t) for t, _ in words["top"]),
            "bottom": " ".join(repr(t) for t, _ in words["bottom"]),
        }
        for layer, words in summary["logit_lens"].items()
    ]
    parts += ["<h2>Logit lens of the reasoning direction</h2>", _table(pd.DataFrame(lens_rows))]
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 8px}"
        "table{border-collapse:collapse}tr:nth-child(even){background:#f3f3f3}img{width:100%}"
        "pre{white-space:pre-wrap;background:#f7f7f7;padding:4px}"
    )
    html = f"<!doctype html><meta charset=utf-8><style>{style}</style>{''.join(parts)}"
    write_text(out / "interp.html", html)
    return out / "interp.html"
