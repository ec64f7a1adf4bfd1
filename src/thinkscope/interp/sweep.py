"""Intervention sweep: accuracy and DTR of greedy answers while a direction steers the model.

Answers come from thinkscope's sampler (``generate_unit``) and are graded by its grader; DTR is
thinkscope's metric, measured with the same hooks active (the steered model's own lens). The
generated texts can be kept: one JSONL per strength (``steer_{alpha:+g}.jsonl``) and one for
the ablation (``ablate.jsonl``), a row per answer with its prompt, strength, layer and text.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from statsmodels.stats.proportion import proportion_confint

from thinkscope.core.atomic import write_text
from thinkscope.generation.pipeline import GenerateConfig, generate_unit, question_units
from thinkscope.metrics import measure, parse_metrics
from thinkscope.models import LM
from thinkscope.models.hooks.interventions import ablate_direction, steer
from thinkscope.models.hooks.points import Handle
from thinkscope.runstore.trace import Trace
from thinkscope.tasks.problem import Problem

console = Console(stderr=True)
COLUMNS = ["intervention", "alpha", "n", "accuracy", "acc_lo", "acc_hi", "dtr", "mean_tokens", "s"]


def answers(
    lm: LM, problems: list[Problem], config: GenerateConfig, hooks: Handle
) -> tuple[list[Trace], np.ndarray]:
    """The graded answers to ``problems`` with ``hooks`` active, and each one's DTR ``[N]``
    (NaN where undefined), measured with the same hooks active."""
    traces = []
    with hooks:
        for _, unit in question_units(problems, config.unit_questions):
            traces += generate_unit(lm, unit, config)[0]
        results = measure(
            lm, [t.prompt_ids for t in traces], [t.token_ids for t in traces], parse_metrics("dtr")
        )
    return traces, np.array([r["dtr"].value for r in results], dtype=float)


def evaluate(
    lm: LM, problems: list[Problem], config: GenerateConfig, hooks: Handle
) -> tuple[dict, list[Trace]]:
    """Greedy answers to ``problems`` with ``hooks`` active: accuracy (Wilson CI) and mean DTR,
    and the traces."""
    start = time.perf_counter()
    traces, dtrs = answers(lm, problems, config, hooks)
    hits = sum(t.correct for t in traces)
    lo, hi = proportion_confint(hits, len(traces), method="wilson")
    return {
        "n": len(traces),
        "accuracy": hits / len(traces),
        "acc_lo": lo,
        "acc_hi": hi,
        "dtr": float(np.nanmean(dtrs)) if np.isfinite(dtrs).any() else math.nan,
        "mean_tokens": float(np.mean([len(t.token_ids) for t in traces])),
        "s": round(time.perf_counter() - start, 1),
    }, traces


def write_texts(path: Path, traces: list[Trace], strength: float | None, layer: int | None) -> None:
    """One JSONL row per trace: problem, prompt, strength, layer, generated text, correct."""
    rows = [
        {
            "problem_id": t.problem_id,
            "prompt": t.prompt,
            "strength": strength,
            "layer": layer,
            "text": t.completion,
            "correct": t.correct,
        }
        for t in traces
    ]
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def steering_sweep(
    lm: LM,
    problems: list[Problem],
    config: GenerateConfig,
    layer: int,
    vector: torch.Tensor,
    alphas: list[float],
    ablate_layers: list[int] | None = None,
    texts: Path | None = None,
) -> pd.DataFrame:
    """One row per alpha (``steer`` with ``alpha * vector`` at ``layer``), and one for the
    direction projected out of ``ablate_layers`` when given. ``texts``: a folder for the
    generated texts (see the module docstring)."""
    rows = []
    for alpha in alphas:
        result, traces = evaluate(lm, problems, config, steer(lm, {layer: vector}, alpha=alpha))
        if texts is not None:
            write_texts(texts / f"steer_{alpha:+g}.jsonl", traces, alpha, layer)
        rows.append({"intervention": f"steer@{layer}", "alpha": alpha, **result})
        console.print(
            f"[bold]sweep[/bold] alpha {alpha:+g}: accuracy {result['accuracy']:.3f}, "
            f"DTR {result['dtr']:.3f} ({result['s']} s)"
        )
    if ablate_layers:
        result, traces = evaluate(lm, problems, config, ablate_direction(lm, vector, ablate_layers))
        if texts is not None:
            write_texts(texts / "ablate.jsonl", traces, None, None)
        rows.append({"intervention": "ablate", "alpha": math.nan, **result})
    return pd.DataFrame(rows, columns=COLUMNS)
