"""Accuracy and length: how often the model is right, how long it thinks, and whether the
right answers are the short ones. Everything here reads the base run."""

from __future__ import annotations

import numpy as np

from thinkscope.core.spec import Spec
from thinkscope.profile.numbers import question_mean
from thinkscope.profile.section import Context, Section, SectionResult, Stat
from thinkscope.stats import mean_pass_at_k


class Sizes(Spec):
    """Accuracy reads the base run only: no sizes of its own."""


SIZES = {"quick": Sizes(), "standard": Sizes(), "full": Sizes()}


def _length_figure(ctx: Context, tokens: np.ndarray, correct: np.ndarray, limit: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(0, limit, 25)
    for mask, label, color in ((correct, "correct", "tab:green"), (~correct, "wrong", "tab:red")):
        if mask.any():
            label = f"{label} ({mask.sum()})"
            ax.hist(tokens[mask], bins=bins, alpha=0.6, label=label, color=color)
    ax.set(xlabel="completion tokens", ylabel="samples", title="Length by correctness")
    ax.legend()
    fig.tight_layout()
    return ctx.figure(fig, "length", "Completion length of correct and wrong samples.")


def measure(ctx: Context) -> SectionResult:
    from thinkscope.runstore.folder import Run

    traces = Run(ctx.base).traces()
    ids, n = traces["problem_id"], ctx.protocol.run.n
    correct = traces["correct"].to_numpy(bool)
    tokens = traces["n_tokens"].to_numpy(np.float64)
    truncated = (traces["finish_reason"] == "length").to_numpy(np.float64)
    stats = {
        "accuracy": question_mean(ids, correct.astype(np.float64)),
        f"pass@{n}": Stat(mean_pass_at_k(ids, correct, n), n=int(ids.nunique()), method="exact"),
        "tokens": question_mean(ids, tokens, unit="tokens"),
        "truncated": question_mean(ids, truncated),
    }
    notes = []
    for label, mask in (("correct", correct), ("wrong", ~correct)):
        if mask.any():
            stats[f"tokens.{label}"] = question_mean(ids[mask], tokens[mask], unit="tokens")
        else:
            notes.append(f"no {label} sample: the length of {label} samples is undefined")
            stats[f"tokens.{label}"] = Stat.undefined(f"no {label} sample", 0, "tokens")
    figures = [_length_figure(ctx, tokens, correct, ctx.protocol.run.max_new_tokens)]
    return SectionResult(stats=stats, headline=["accuracy", "tokens"], figures=figures, notes=notes)


SECTION = Section(
    "accuracy",
    "Accuracy and length",
    measure,
    estimate=lambda protocol: 2.0,
)
