"""Accuracy and length: how often the model is right, how long it thinks, and whether the
right answers are the short ones. Everything here reads the base run."""

from __future__ import annotations

import numpy as np

from thinkscope.core.spec import Spec
from thinkscope.profile.figures import by_correctness
from thinkscope.profile.numbers import class_means, question_mean
from thinkscope.profile.section import Context, Section, SectionResult, Stat
from thinkscope.stats import mean_pass_at_k


class Sizes(Spec):
    """Accuracy reads the base run only: no sizes of its own."""


SIZES = {"quick": Sizes(), "standard": Sizes(), "full": Sizes()}


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
    stats |= class_means("tokens", ids, tokens, correct, "tokens")
    figure = by_correctness(
        ctx,
        tokens,
        correct,
        np.linspace(0, ctx.protocol.run.max_new_tokens, 25),
        "completion tokens",
        "Length by correctness",
        "length",
        "Completion length of correct and wrong samples.",
    )
    return SectionResult(stats=stats, headline=["accuracy", "tokens"], figures=[figure])


SECTION = Section(
    "accuracy",
    "Accuracy and length",
    measure,
    estimate=lambda protocol: 2.0,
)
