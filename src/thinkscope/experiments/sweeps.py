"""How DTR moves with the threshold g, the temperature, and the prompting style."""

from __future__ import annotations

import numpy as np
import pandas as pd

from thinkscope.experiments.common import Experiment, dtr, jsd_matrix, plt, settling_depths
from thinkscope.metrics.dtr import deep_layer
from thinkscope.stats import auroc

STYLES = ("cot", "direct")


def _auroc(scores, correct) -> float:
    return auroc(np.asarray(scores, float), np.asarray(correct, bool), n_resamples=0).auroc


def threshold_curve(
    profiles: list[np.ndarray], correct, grid, rho: float, base: str
) -> tuple[pd.DataFrame, dict[float, np.ndarray], dict[float, np.ndarray]]:
    """At each threshold g of ``grid`` (``base`` units), from the traces' JSD profiles
    ``[T, L]`` (nats): the mean DTR, mean settling depth, share of tokens settling at the last
    layer and the AUROC of DTR for ``correct`` (NaN when undefined); and per g, the settling
    depths of all tokens and the traces' DTRs."""
    n_layers = profiles[0].shape[1]
    rows, hist, per_trace = [], {}, {}
    for g in grid:
        depths = [settling_depths(p, g, base) for p in profiles]
        ratios = [dtr(d, n_layers, rho) for d in depths]
        flat = np.concatenate(depths)
        hist[g], per_trace[g] = flat, np.asarray(ratios)
        rows.append(
            {
                "g": g,
                "mean_dtr": np.nanmean(ratios),
                "mean_settling_depth": flat.mean(),
                "share_settling_at_last_layer": np.mean(flat == n_layers),
                "auroc_dtr": _auroc(ratios, correct),
            }
        )
    return pd.DataFrame(rows), hist, per_trace


def threshold_sweep(exp: Experiment) -> pd.DataFrame:
    """Settling depths and DTR at each threshold g of ``config.thresholds`` (``--g``), from one
    scored run's JSD profiles."""
    _, traces, tokens = exp.scored_run("main")
    profiles = jsd_matrix(tokens)
    n_layers = profiles[0].shape[1]
    grid = exp.config.thresholds
    table, hist, _ = threshold_curve(
        profiles, traces["correct"], grid, exp.config.rho, exp.config.base
    )
    fig, axes = plt.subplots(
        1, len(grid), figsize=(2.2 * len(grid), 2.6), sharey=True, squeeze=False
    )
    for ax, g in zip(axes[0], grid, strict=True):
        ax.hist(hist[g], bins=np.arange(1, n_layers + 2) - 0.5, color="#4c72b0")
        ax.axvline(deep_layer(n_layers, exp.config.rho) - 0.5, color="#c44e52", ls="--", lw=1)
        ax.set_title(f"g = {g}", fontsize=9)
        ax.set_xlabel("settling depth")
    axes[0, 0].set_ylabel("tokens")
    fig.suptitle("Settling-depth histograms by threshold (dashed: deep from here)", fontsize=10)
    return exp.finish(table, exp.figure("settling_depth_by_threshold", fig))


def _variant_summary(traces: pd.DataFrame, tokens: pd.DataFrame, exp: Experiment) -> dict:
    profiles = jsd_matrix(tokens)
    ratios = np.array(
        [
            dtr(settling_depths(p, exp.config.g, exp.config.base), p.shape[1], exp.config.rho)
            for p in profiles
        ]
    )
    correct = traces["correct"].to_numpy(bool)
    return {
        "accuracy": correct.mean(),
        "mean_dtr": np.nanmean(ratios),
        "std_dtr": np.nanstd(ratios),
        "dtr_correct": np.nanmean(ratios[correct]) if correct.any() else np.nan,
        "dtr_wrong": np.nanmean(ratios[~correct]) if (~correct).any() else np.nan,
        "mean_tokens": traces["n_tokens"].mean(),
        "auroc_dtr": _auroc(ratios, correct),
        "_ratios": ratios,
    }


def _compare(exp: Experiment, key: str, values, overrides, title: str, name: str) -> pd.DataFrame:
    rows = []
    for value in values:
        _, traces, tokens = exp.scored_run(f"{key}-{value}", **overrides(value))
        rows.append({key: value, **_variant_summary(traces, tokens, exp)})
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.boxplot([r.pop("_ratios") for r in rows], tick_labels=[str(v) for v in values])
    ax.set_xlabel(key.replace("_", " "))
    ax.set_ylabel(f"DTR (g={exp.config.g}, rho={exp.config.rho})")
    ax.set_title(title, fontsize=10)
    return exp.finish(pd.DataFrame(rows), exp.figure(name, fig))


def temperature_sweep(exp: Experiment) -> pd.DataFrame:
    """DTR and accuracy at each temperature of ``config.temperatures`` (``--temperatures``);
    greedy runs (T = 0) draw one sample per question."""
    return _compare(
        exp,
        "temperature",
        exp.config.temperatures,
        lambda t: {"temperature": t, "n": 1 if t == 0 else exp.config.n},
        "DTR by sampling temperature",
        "dtr_by_temperature",
    )


def cot_vs_direct(exp: Experiment) -> pd.DataFrame:
    """The prompting control: does DTR follow the task or the verbosity of the prompt?"""
    return _compare(
        exp,
        "prompt_style",
        STYLES,
        lambda s: {"prompt_style": s},
        "DTR by prompting style",
        "dtr_by_prompt_style",
    )
