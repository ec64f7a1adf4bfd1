"""Intervention sweep: accuracy and DTR of greedy answers while a direction steers the model.

Answers come from thinkscope's sampler (``generate_unit``) and are graded by its grader; DTR is
thinkscope's metric, measured with the same hooks active (the steered model's own lens).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from statsmodels.stats.proportion import proportion_confint

from thinkscope.generation.pipeline import GenerateConfig, generate_unit, question_units
from thinkscope.metrics import measure, parse_metrics
from thinkscope.models import LM
from thinkscope.models.hooks.interventions import ablate_direction, steer
from thinkscope.models.hooks.points import Handle
from thinkscope.tasks.problem import Problem

console = Console(stderr=True)
COLUMNS = ["intervention", "alpha", "n", "accuracy", "acc_lo", "acc_hi", "dtr", "mean_tokens", "s"]


def evaluate(lm: LM, problems: list[Problem], config: GenerateConfig, hooks: Handle) -> dict:
    """Greedy answers to ``problems`` with ``hooks`` active: accuracy (Wilson CI), mean DTR."""
    start = time.perf_counter()
    traces = []
    with hooks:
        for _, unit in question_units(problems, config.unit_questions):
            traces += generate_unit(lm, unit, config)[0]
        results = measure(
            lm, [t.prompt_ids for t in traces], [t.token_ids for t in traces], parse_metrics("dtr")
        )
    hits = sum(t.correct for t in traces)
    lo, hi = proportion_confint(hits, len(traces), method="wilson")
    dtrs = np.array([r["dtr"].value for r in results], dtype=float)
    return {
        "n": len(traces),
        "accuracy": hits / len(traces),
        "acc_lo": lo,
        "acc_hi": hi,
        "dtr": float(np.nanmean(dtrs)) if np.isfinite(dtrs).any() else math.nan,
        "mean_tokens": float(np.mean([len(t.token_ids) for t in traces])),
        "s": round(time.perf_counter() - start, 1),
    }


def steering_sweep(
    lm: LM,
    problems: list[Problem],
    config: GenerateConfig,
    layer: int,
    vector: torch.Tensor,
    alphas: list[float],
    ablate_layers: list[int] | None = None,
) -> pd.DataFrame:
    """One row per alpha (``steer`` with ``alpha * vector`` at ``layer``), and one for the
    direction projected out of ``ablate_layers`` when given."""
    rows = []
    for alpha in alphas:
        result = evaluate(lm, problems, config, steer(lm, {layer: vector}, alpha=alpha))
        rows.append({"intervention": f"steer@{layer}", "alpha": alpha, **result})
        console.print(
            f"[bold]sweep[/bold] alpha {alpha:+g}: accuracy {result['accuracy']:.3f}, "
            f"DTR {result['dtr']:.3f} ({result['s']} s)"
        )
    if ablate_layers:
        hooks = ablate_direction(lm, vector, ablate_layers)
        rows.append(
            {"intervention": "ablate", "alpha": math.nan, **evaluate(lm, problems, config, hooks)}
        )
    return pd.DataFrame(rows, columns=COLUMNS)
