"""The run header and registry row of a ``thinkscope eval`` whose lm-eval ``--output_path``
holds its results: lm-eval's parsed options as config, the thinkscope model's weights, the
scores."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

from thinkscope.models.identity import identify
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.header import register

#: lm-eval's parsed fields that are not options of the evaluation.
NOT_OPTIONS = ("command", "func", "model_args")


def record_eval(parsed: Namespace, started: str) -> None:
    """Register the eval run in ``--output_path`` (nothing when lm-eval wrote no folder), from
    the arguments lm-eval parsed."""
    out = parsed.output_path
    if out is None or not Path(out).is_dir():
        return
    given = {k: v for k, v in vars(parsed).items() if k not in NOT_OPTIONS and v is not None}
    model_args = parsed.model_args or {}
    config = {**{f"lm_eval_{k}": v for k, v in given.items()}, **model_args}
    if parsed.model == "thinkscope" and "model" in model_args:
        config["weights"] = identify(ModelSpec.of({"model": model_args["model"]}))
    results = sorted(Path(out).rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    scores = json.loads(results[-1].read_text())["results"] if results else {}
    summary = {
        f"{task}.{metric}": value
        for task, metrics in scores.items()
        for metric, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    register(out, "eval", config, summary, started)
