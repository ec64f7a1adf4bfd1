"""``thinkscope decode-sweep``: several decoding configs over the same problems and seeds.

The configs file is YAML, a mapping from a config name to ``generate`` options (or a list
of mappings with a ``name``)::

    plain-T0.7: {temperature: 0.7}
    min-p-0.1: {temperature: 0.7, min_p: 0.1}
    greedy-threshold-0.3: {temperature: 0.7, greedy_threshold: 0.3}
    edt: {edt_var: [1.0, 0.8, 1.0]}
    calibrated: {temperature: 0.7, cal_acc_from: cal/calibration.json, cal_acc_threshold: 0.3}

Every config becomes a run folder ``OUT/runs/NAME`` (each sample has its own seed, so the
configs see the same problems and random streams); finished runs are reused and a killed one
resumes. ``OUT/results.csv`` holds one row per config: ``mean_sample_accuracy``, ``maj@k`` and
``pass@k`` (:mod:`thinkscope.stats.passk`) over the k = ``n`` samples per question, mean
tokens and tokens/s;
``OUT/figures/sweep.png`` draws it.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pandas as pd
import yaml

from thinkscope.core.atomic import write_text, write_yaml
from thinkscope.core.errors import UserError
from thinkscope.core.figures import STYLE
from thinkscope.decoding.config import cal_acc_from_file
from thinkscope.experiments.decoding import figures
from thinkscope.experiments.decoding.step_stats import voted_correct
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.models import LM, load_model
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.stats.passk import mean_pass_at_k

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")


def load_sweep(path: Path | str) -> dict[str, dict]:
    """Config name -> ``generate`` options, from a YAML mapping or list of named mappings."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path} is not valid YAML{where}: {problem}") from None
    if isinstance(data, list):
        if not all(isinstance(d, dict) and "name" in d for d in data):
            raise UserError(f"{path}: each entry of the list needs a name")
        entries = [(str(d["name"]), {k: v for k, v in d.items() if k != "name"}) for d in data]
    elif isinstance(data, dict):
        entries = [(str(k), v or {}) for k, v in data.items()]
    else:
        raise UserError(f"{path} must map config names to generate options")
    names = [name for name, _ in entries]
    if not entries or len(set(names)) != len(names):
        raise UserError(f"{path} needs at least one config and unique config names")
    for name, options in entries:
        if not NAME.match(name) or not isinstance(options, dict):
            raise UserError(f"{path}: config {name!r} needs a plain name and a mapping of options")
    return {name: _calibrated(options) for name, options in entries}


def _calibrated(options: dict) -> dict:
    """Turn ``cal_acc_from`` (+ ``cal_acc_threshold``) into ``cal_acc: [A, B, thr]``."""
    options = dict(options)
    source = options.pop("cal_acc_from", None)
    threshold = options.pop("cal_acc_threshold", None)
    if source is not None:
        options["cal_acc"] = cal_acc_from_file(source, 0.3 if threshold is None else threshold)
    elif threshold is not None:
        raise UserError("cal_acc_threshold needs cal_acc_from")
    return options


def summarize_run(name: str, run: Run) -> dict:
    traces = run.traces()
    by_question = traces.groupby("problem_id", sort=False)
    k = int(by_question.size().min())  # every question has the run's n samples
    return {
        "config": name,
        "samples": len(traces),
        "mean_sample_accuracy": float(traces["correct"].mean()),
        "maj@k": float(by_question.apply(voted_correct, include_groups=False).mean()),
        "pass@k": mean_pass_at_k(traces["problem_id"], traces["correct"], k),
        "mean_tokens": float(traces["n_tokens"].mean()),
        "tokens_per_s": run.timing.get("tokens_per_s"),
    }


def decode_sweep(
    configs: Path | str,
    out: Path | str,
    base: dict,
    lm: LM | None = None,
    show_progress: bool = True,
) -> pd.DataFrame:
    """Run every config of the ``configs`` file with the shared ``base`` generate options."""
    out = Path(out)
    sweep, started = load_sweep(configs), now()
    plans = {}
    for name, opts in sweep.items():
        try:
            plans[name] = GenerateConfig.parse(**{**base, **opts})
        except UserError as err:
            raise UserError(f"{configs}: config {name!r}: {err}") from None
    rows = []
    for name, config in plans.items():
        run = Run(out / "runs" / name)
        if run.finished and run.config != config.resolved().model_dump():
            raise UserError(f"{run.path} holds a finished run with another config; use a new --out")
        if not run.finished:
            lm = lm or load_model(ModelSpec.of(config))
            resume = run.config_path.is_file()
            run = generate_run(config, run.path, resume=resume, lm=lm, show_progress=show_progress)
        rows.append(summarize_run(name, run))
    table = pd.DataFrame(rows)
    write_yaml(out / "sweep.yaml", {"base": base, "configs": sweep})
    write_text(out / "results.csv", table.to_csv(index=False))
    with matplotlib.rc_context(STYLE):
        figures.save(figures.sweep_bars(table), out / "figures" / "sweep.png")
    first = Run(out / "runs" / next(iter(plans))).config  # the resolved model spec, weights
    model = {k: first[k] for k in ModelSpec.model_fields if k in first}
    config = {"configs": str(Path(configs).resolve()), **base, **model}
    summary = {row.config: row.mean_sample_accuracy for row in table.itertuples()}
    register(out, "decode-sweep", config, summary, started)
    return table
