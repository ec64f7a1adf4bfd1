"""Where in the network different kinds of tokens settle, and the raw JSD behind it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from thinkscope.core.atomic import atomic_write
from thinkscope.core.errors import UserError
from thinkscope.experiments.common import Experiment, jsd_matrix, plt, settling_depths
from thinkscope.metrics.dtr import deep_layer

OPERATORS = set("+-*/=×÷^%<>()")
CATEGORIES = ("digit", "operator", "word", "punctuation", "whitespace", "special")
FIRST_TRACES = 4  # jsd-diagnostic plots this many traces (in run order) without --traces


def token_category(text: str, special: bool) -> str:
    """``digit``, ``operator``, ``word``, ``punctuation``, ``whitespace`` or ``special``."""
    stripped = text.strip()
    if special:
        return "special"
    if not stripped:
        return "whitespace"
    if stripped.replace(".", "").replace(",", "").isdigit():
        return "digit"
    if all(ch in OPERATORS for ch in stripped):
        return "operator"
    if any(ch.isalpha() for ch in stripped):
        return "word"
    return "punctuation"


def token_types(exp: Experiment) -> pd.DataFrame:
    """Mean settling depth and deep share per token category."""
    run, traces, tokens = exp.scored_run("main")
    tokenizer = exp.tokenizer()
    special = set(tokenizer.all_special_ids)
    merged = traces[["problem_id", "sample_idx", "token_ids"]].merge(
        tokens, on=["problem_id", "sample_idx"]
    )
    records = []
    for ids, profile in zip(merged["token_ids"], jsd_matrix(merged), strict=True):
        depths = settling_depths(profile, exp.config.g, exp.config.base)
        for token, depth in zip(ids, depths, strict=True):
            text = tokenizer.decode([int(token)])
            records.append((token_category(text, int(token) in special), depth))
    frame = pd.DataFrame(records, columns=["category", "settling_depth"])
    n_layers = jsd_matrix(tokens)[0].shape[1]
    frame["deep"] = frame["settling_depth"] >= deep_layer(n_layers, exp.config.rho)
    table = (
        frame.groupby("category")
        .agg(
            n_tokens=("deep", "size"),
            mean_settling_depth=("settling_depth", "mean"),
            deep_share=("deep", "mean"),
        )
        .reindex([c for c in CATEGORIES if c in set(frame["category"])])
        .reset_index()
    )
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.bar(table["category"], table["mean_settling_depth"], color="#4c72b0")
    for x, (n, depth) in enumerate(
        zip(table["n_tokens"], table["mean_settling_depth"], strict=True)
    ):
        ax.text(x, depth, f"n={n}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"mean settling depth (of {n_layers})")
    ax.set_title(f"Settling depth by token type (g={exp.config.g})", fontsize=10)
    return exp.finish(table, exp.figure("settling_depth_by_token_type", fig))


def _plotted(merged: pd.DataFrame, profiles: list[np.ndarray], chosen: tuple[str, ...]) -> list:
    """Row indices of the traces ``PROBLEM_ID:SAMPLE`` in ``chosen``, in that order; without
    any, the first :data:`FIRST_TRACES` traces that have tokens."""
    if not chosen:
        return [i for i, p in enumerate(profiles) if len(p)][:FIRST_TRACES]
    names = merged["problem_id"].astype(str) + ":" + merged["sample_idx"].astype(str)
    where = {name: i for i, name in enumerate(names)}
    missing = [trace for trace in chosen if trace not in where]
    if missing:
        raise UserError(f"--traces: the run has no trace {', '.join(missing)} (PROBLEM_ID:SAMPLE)")
    empty = [trace for trace in chosen if not len(profiles[where[trace]])]
    if empty:
        raise UserError(f"--traces: {', '.join(empty)} generated no tokens; choose others")
    return [where[trace] for trace in chosen]


def jsd_diagnostic(exp: Experiment) -> pd.DataFrame:
    """Mean JSD per layer (all, correct, wrong) and heatmaps of the raw JSD of the traces
    ``config.traces`` (``--traces``; default: the first four with tokens), which are listed in
    ``plotted_traces.csv``."""
    _, traces, tokens = exp.scored_run("main")
    merged = traces[["problem_id", "sample_idx", "correct"]].merge(
        tokens, on=["problem_id", "sample_idx"]
    )
    profiles = jsd_matrix(merged)
    correct = merged["correct"].to_numpy(bool)
    n_layers = profiles[0].shape[1]

    def layer_mean(mask) -> np.ndarray:
        chosen = [p for p, keep in zip(profiles, mask, strict=True) if keep and len(p)]
        return np.concatenate(chosen).mean(axis=0) if chosen else np.full(n_layers, np.nan)

    table = pd.DataFrame(
        {
            "layer": np.arange(1, n_layers + 1),
            "mean_jsd": layer_mean(np.ones_like(correct)),
            "mean_jsd_correct": layer_mean(correct),
            "mean_jsd_wrong": layer_mean(~correct),
        }
    )
    shown = _plotted(merged, profiles, exp.config.traces)
    plotted = merged.loc[shown, ["problem_id", "sample_idx", "correct"]]
    plotted["n_tokens"] = [len(profiles[i]) for i in shown]
    atomic_write(exp.out / "plotted_traces.csv", lambda tmp: plotted.to_csv(tmp, index=False))
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.2), squeeze=False)
    for ax, i in zip(axes[0], shown, strict=True):
        image = ax.imshow(
            profiles[i].T,
            aspect="auto",
            origin="lower",
            cmap="magma",
            vmin=0,
            vmax=np.log(2),
            extent=(0.5, len(profiles[i]) + 0.5, 0.5, n_layers + 0.5),
        )
        ax.set_title(
            f"{merged['problem_id'][i]} #{merged['sample_idx'][i]} "
            f"({'correct' if correct[i] else 'wrong'})",
            fontsize=8,
        )
        ax.set_xlabel("generated token")
        ax.set_ylabel("layer")
    fig.colorbar(image, ax=axes[0].tolist(), label="JSD to final layer (nats)")
    return exp.finish(table, exp.figure("jsd_heatmaps", fig))
