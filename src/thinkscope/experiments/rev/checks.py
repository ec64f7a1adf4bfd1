"""The seed's success criteria as a computed pass/fail table, and the head-ablation curve.

Criteria (seed 001), each row ``criterion, scope, value, target, passed`` with ``passed`` True,
False or None (undefined for the runs given, with the reason in ``value``):

- no NaN REV value in any run (across temperatures);
- delta-AUC (+rev over the baseline) increasing with model size (at least two models, each
  with a defined delta-AUC);
- delta-AUC >= +0.05 for models of 300M-1B parameters and >= +0.12 from 1B on (none below 300M);
- partial r(REV | length, perplexity) >= 0.3 with p < 0.01, per run;
- variance of REV's AUROC across the temperatures of one model <= 0.03 (at least two with a
  defined AUROC).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from thinkscope.generation.pipeline import GenerateConfig, generate_unit
from thinkscope.generation.spec import greedy
from thinkscope.interp import ablate_heads
from thinkscope.metrics.rev.control import controls
from thinkscope.models import LM
from thinkscope.tasks.loaders import load_problems

SIZE_TARGETS = ((1e9, 0.12), (3e8, 0.05))


def _row(criterion: str, scope: str, value, target: str, passed: bool | None) -> dict:
    return {
        "criterion": criterion,
        "scope": scope,
        "value": value,
        "target": target,
        "passed": passed,
    }


def success_criteria(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs``: one row per run with ``run``, ``model``, ``params``, ``temperature``,
    ``rev_nan``, ``delta_auc``, ``rev_auroc``, ``partial_r``, ``partial_p``."""
    rows = []
    nan_total = int(runs["rev_nan"].sum())
    temps = ", ".join(f"{t:g}" for t in sorted(runs["temperature"].unique()))
    rows.append(
        _row("no NaNs across temperatures", f"T = {temps}", nan_total, "0 NaN", nan_total == 0)
    )
    by_model = runs.groupby("params")["delta_auc"].mean().sort_index()
    if len(by_model) < 2 or by_model.isna().any():
        why = "one model size" if len(by_model) < 2 else "delta-AUC undefined for a model"
        rows.append(
            _row("monotone delta-AUC across model sizes", "models", why, "increasing", None)
        )
    else:
        steps = np.diff(by_model.to_numpy())
        rows.append(
            _row(
                "monotone delta-AUC across model sizes",
                "models",
                " < ".join(f"{v:.3f}" for v in by_model),
                "increasing",
                bool(np.all(steps > 0)),
            )
        )
    for run in runs.itertuples():
        target = next((t for size, t in SIZE_TARGETS if run.params >= size), None)
        rows.append(
            _row(
                "delta-AUC threshold",
                run.run,
                run.delta_auc,
                f">= {target}" if target else "none below 300M parameters",
                None
                if target is None or math.isnan(run.delta_auc)
                else bool(run.delta_auc >= target),
            )
        )
    for run in runs.itertuples():
        ok = (
            None
            if math.isnan(run.partial_r)
            else bool(run.partial_r >= 0.3 and run.partial_p < 0.01)
        )
        rows.append(
            _row(
                "partial r(REV | length, ppl)",
                run.run,
                f"r = {run.partial_r:.3f}, p = {run.partial_p:.3g}",
                ">= 0.3, p < 0.01",
                ok,
            )
        )
    for model, group in runs.groupby("model"):
        aucs = group["rev_auroc"].dropna()
        if group["temperature"].nunique() < 2 or len(aucs) < 2:
            why = "one temperature" if group["temperature"].nunique() < 2 else "AUROC undefined"
            rows.append(_row("temperature variance of REV AUROC", model, why, "<= 0.03", None))
        else:
            var = float(aucs.var(ddof=0))
            rows.append(
                _row("temperature variance of REV AUROC", model, var, "<= 0.03", var <= 0.03)
            )
    return pd.DataFrame(rows)


def head_ablation_curve(
    lm: LM, config: dict, shares: Sequence[float], questions: int
) -> pd.DataFrame:
    """Greedy accuracy on the run's first ``questions`` problems with the top ``share`` of
    heads (ranked by mean logit shift on the arithmetic prompts) zeroed, for each share."""
    gen = GenerateConfig(**greedy({**config, "n": 1}))
    problems = load_problems(gen.task, min(questions, gen.questions), gen.seed, gen.fields)
    ranking = controls(lm).ranking
    rows = []
    for share in shares:
        chosen = ranking[: int(round(share * len(ranking)))]
        heads: dict[int, list[int]] = {}
        for layer, head in chosen:
            heads.setdefault(layer + 1, []).append(head)
        if heads:
            with ablate_heads(lm, heads):
                traces, _ = generate_unit(lm, problems, gen)
        else:
            traces, _ = generate_unit(lm, problems, gen)
        accuracy = float(np.mean([t.correct for t in traces]))
        rows.append({"share": share, "heads": len(chosen), "accuracy": accuracy})
    table = pd.DataFrame(rows)
    table["delta_accuracy"] = table["accuracy"] - table["accuracy"].iloc[0]
    return table
