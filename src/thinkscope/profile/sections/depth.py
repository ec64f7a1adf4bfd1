"""Depth: where token predictions settle across the layers, the mean JSD to the final layer by
layer, the DTR of correct and wrong samples, the g-curve (mean DTR and its AUROC over the
settling threshold g) and top-k agreement. Everything here reads the scored base run."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from thinkscope.core.spec import Spec
from thinkscope.profile.figures import by_correctness
from thinkscope.profile.numbers import auroc_stat, class_means, question_mean
from thinkscope.profile.section import Context, FigureRef, Section, SectionResult

CLASSES = ("correct", "wrong")


class Sizes(Spec):
    """The depth section reads the base run; its one setting is the g-curve's grid."""

    g_grid: tuple[float, ...] = Field(
        (0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
        description="settling thresholds g of the g-curve, in the base run's DTR log base",
    )


SIZES = {"quick": Sizes(), "standard": Sizes(), "full": Sizes()}


def _masks(correct: np.ndarray) -> dict[str, np.ndarray]:
    return {"all": np.ones_like(correct), "correct": correct, "wrong": ~correct}


def settling_table(depths: np.ndarray, lengths: np.ndarray, correct: np.ndarray, n_layers: int):
    """Per layer 1..L, the share of tokens (all, of correct samples, of wrong samples) whose
    settling depth is that layer; ``None`` for a class without tokens."""
    rows = [{"layer": layer} for layer in range(1, n_layers + 1)]
    for name, traces in _masks(correct).items():
        mine = depths[np.repeat(traces, lengths)]
        counts = np.bincount(mine, minlength=n_layers + 1)[1:]
        for row, count in zip(rows, counts, strict=True):
            row[f"share_{name}"] = float(count / len(mine)) if len(mine) else None
            row[f"tokens_{name}"] = int(count)
    return rows


def jsd_table(trace_means: np.ndarray, correct: np.ndarray) -> list[dict]:
    """Per layer, the mean over samples of each sample's mean JSD (nats) to the final layer."""
    rows = [{"layer": layer} for layer in range(1, trace_means.shape[1] + 1)]
    has = ~np.isnan(trace_means[:, 0])
    for name, traces in _masks(correct).items():
        mine = trace_means[traces & has]
        means = mine.mean(0) if len(mine) else [None] * len(rows)
        for row, value in zip(rows, means, strict=True):
            row[f"jsd_{name}"] = None if value is None else float(value)
    return rows


def g_curve(curve, correct: np.ndarray) -> list[dict]:
    """The g-curve's rows: :func:`~thinkscope.experiments.sweeps.threshold_curve`'s means per
    g, and the AUROC of DTR at that g with its CI (None, with the reason, when undefined)."""
    table, _, ratios = curve
    rows = []
    for row in table.to_dict("records"):
        auroc = auroc_stat(ratios[row["g"]], correct)
        rows.append(
            {
                "g": row["g"],
                "mean_dtr": row["mean_dtr"],
                "mean_settling_depth": row["mean_settling_depth"],
                "share_settling_at_last_layer": row["share_settling_at_last_layer"],
                "auroc": auroc.value,
                "auroc_lo": auroc.lo,
                "auroc_hi": auroc.hi,
                "auroc_note": auroc.note,
            }
        )
    return rows


def _g_curve_figure(ctx: Context, rows: list[dict], g_unit: str) -> FigureRef:
    import matplotlib.pyplot as plt

    g = [r["g"] for r in rows]
    aurocs = np.array([np.nan if r["auroc"] is None else r["auroc"] for r in rows])
    panels = 1 if np.isnan(aurocs).all() else 2
    fig, axes = plt.subplots(1, panels, figsize=(3.4 * panels, 3), squeeze=False)
    axes[0, 0].plot(g, [r["mean_dtr"] for r in rows], marker="o")
    axes[0, 0].set(xlabel=f"g ({g_unit})", ylabel="mean DTR", title="DTR over g")
    if panels == 2:
        lo, hi = (
            [np.nan if r[k] is None else r[k] for r in rows] for k in ("auroc_lo", "auroc_hi")
        )
        axes[0, 1].fill_between(g, lo, hi, color="tab:purple", alpha=0.2, linewidth=0)
        axes[0, 1].plot(g, aurocs, marker="o", color="tab:purple")
        axes[0, 1].axhline(0.5, color="black", ls="--", lw=1)
        axes[0, 1].set(xlabel=f"g ({g_unit})", ylabel="AUROC", title="AUROC of DTR over g")
    fig.tight_layout()
    return ctx.figure(fig, "g_curve", "Mean DTR and its AUROC for a correct answer against g.")


def _lens_figures(ctx: Context, scored, tokens) -> list[FigureRef]:
    import matplotlib

    from thinkscope.analysis.figures import jsd_by_layer, settling_histogram
    from thinkscope.core.figures import STYLE

    made = []
    with matplotlib.rc_context(STYLE):
        for name, draw, caption in (
            ("settling", settling_histogram, "Share of tokens settling at each layer."),
            ("jsd_by_layer", jsd_by_layer, "Mean JSD to the final layer by layer."),
        ):
            made.append(ctx.figure(draw(scored, tokens), name, caption))
    return made


def measure(ctx: Context) -> SectionResult:
    from thinkscope.analysis.load import load_scored, load_token_metrics
    from thinkscope.experiments.sweeps import threshold_curve

    sizes = ctx.protocol.sizes("depth")
    scored = load_scored(ctx.base)
    tokens = load_token_metrics(scored)
    traces, correct = scored.traces, scored.correct
    ids, column = traces["problem_id"], scored.dtr_column
    dtr = traces[column].to_numpy(np.float64)
    agreement = traces["topk-agreement"].to_numpy(np.float64)
    stats = {
        "dtr": question_mean(ids, dtr),
        **class_means("dtr", ids, dtr, correct),
        "settling_depth.mean": question_mean(
            ids, traces["mean-settling-depth"].to_numpy(np.float64), "layer"
        ),
        "topk_agreement": question_mean(ids, agreement, "layer"),
        **class_means("topk_agreement", ids, agreement, correct, "layer"),
        "auroc.topk_agreement": auroc_stat(agreement, correct),
    }
    n_layers, params = tokens.n_layers, scored.dtr_params
    profiles = [tokens.of(i)[1].astype(np.float64) for i in range(len(traces))]
    g_rows = g_curve(
        threshold_curve(profiles, correct, sizes.g_grid, params["rho"], params["base"]), correct
    )
    tables = {
        "settling_depth": settling_table(
            tokens.settling.astype(np.int64), tokens.lengths(), correct, n_layers
        ),
        "jsd_by_layer": jsd_table(tokens.trace_means(), correct),
        "g_curve": g_rows,
    }
    notes = [
        f"{column}: g = {params['g']} (log base {params['base']}), deep from layer "
        f"{scored.deep_layer(n_layers)} of {n_layers} (rho = {params['rho']})"
    ]
    for label, mask in zip(CLASSES, (correct, ~correct), strict=True):
        if not mask.any():
            notes.append(f"no {label} sample: the {label} curves and histograms are not drawn")
    if all(r["auroc"] is None for r in g_rows):
        notes.append(f"the AUROC of DTR is undefined at every g: {g_rows[0]['auroc_note']}")
    figures = [
        *_lens_figures(ctx, scored, tokens),
        by_correctness(
            ctx,
            dtr,
            correct,
            np.linspace(0, max(float(np.nanmax(dtr)), 1e-3), 21),
            column,
            "DTR by correctness",
            "dtr",
            f"Distribution of the samples' {column}, correct and wrong.",
        ),
        _g_curve_figure(ctx, g_rows, "nats" if params["base"] == "e" else f"log{params['base']}"),
    ]
    return SectionResult(
        stats=stats,
        headline=["dtr", "settling_depth.mean"],
        tables=tables,
        figures=figures,
        notes=notes,
    )


SECTION = Section("depth", "Depth", measure, estimate=lambda protocol: 5.0)  # quick: 1.9 s
