"""The run header and registry row of a ``thinkscope eval`` whose lm-eval ``--output_path``
holds its results: the options as config, the thinkscope model's weights, the scores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from thinkscope.models.identity import identify
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.header import register

ALIASES = {"o": "output_path"}


def options(argv: Sequence[str]) -> dict[str, str]:
    """lm-eval's ``--key value`` / ``--key=value`` / ``-o value`` arguments as a dict."""
    found, key = {}, None
    for arg in argv:
        if arg.startswith("-"):
            name, equals, value = arg.lstrip("-").partition("=")
            key = ALIASES.get(name, name)
            found[key] = value if equals else "true"
            key = None if equals else key
        elif key is not None:
            found[key], key = arg, None
    return found


def record_eval(argv: Sequence[str], started: str) -> None:
    """Register the eval run in ``--output_path`` (nothing when lm-eval wrote no folder)."""
    given = options(argv)
    out = given.get("output_path")
    if out is None or not Path(out).is_dir():
        return
    model_args = dict(p.partition("=")[::2] for p in given.get("model_args", "").split(",") if p)
    config = {**{f"lm_eval_{k}": v for k, v in given.items()}, **model_args}
    if given.get("model") == "thinkscope" and "model" in model_args:
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
