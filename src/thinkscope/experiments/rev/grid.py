"""``thinkscope experiment rev --models A,B --temperatures 0.2,0.7``: the seed-001 grid.

Every cell (model x temperature) is a generate run, scored with ``rev,dtr,length``; then the
evaluation of :mod:`thinkscope.experiments.rev.evaluate` runs over all cells. Result folder::

    OUT/grid.yaml                the grid's config (a rerun must give the same one)
    OUT/cells/m<i>_<model>_T<t>/ one generate run per cell, scored in place
    OUT/results/                 the evaluation (aurocs.csv ... criteria.csv, figures/,
                                 results.json written last)
    OUT/notes.md                 the command, the results, and a section to fill in

Resumable: a killed grid, rerun with the same command, keeps its finished cells and goes on
at the first unfinished one (a cell's generation and scoring resume too). Settings
(:class:`~thinkscope.experiments.rev.spec.RevGridConfig`) come from, weakest first: the
fields' defaults (the seed's evaluation defaults: 64 new tokens, temperature 0.2), a preset,
a YAML file (``--config``, the same keys), and the options given on the command line.
``--control FILE`` replaces the bundled control set
(:func:`thinkscope.metrics.rev.control.read_control`) for the calibration of ``apl`` and
``cud`` and the control separation.
"""

from __future__ import annotations

import math
import re
import shlex
from contextlib import nullcontext
from pathlib import Path

import yaml

from thinkscope.core.atomic import write_text, write_yaml
from thinkscope.core.errors import UserError
from thinkscope.experiments.rev.evaluate import ModelCache, RevConfig, RevResult, evaluate
from thinkscope.experiments.rev.spec import RevGridConfig
from thinkscope.generation.pipeline import generate_run
from thinkscope.metrics.rev.control import read_control, using_control
from thinkscope.models.spec import LoadingSpec
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register
from thinkscope.scoring import score


def next_iteration(root: Path, config: RevGridConfig | None) -> Path:
    """``root/iteration_NNN`` for the grid ``config``: the latest iteration when it is an
    unfinished run of the same grid (it resumes), else the next free number (a finished one is
    never touched; ``None``, not a grid: always the next)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"--root {root} is a file; give a folder for the iterations")
    found = {
        int(p.name.removeprefix("iteration_")): p
        for p in (root.iterdir() if root.is_dir() else ())
        if re.fullmatch(r"iteration_\d{3,}", p.name)
    }
    numbers = sorted(found)
    if numbers and config is not None:
        last = found[numbers[-1]]
        grid = last / "grid.yaml"
        unfinished = not (last / "results" / "results.json").is_file()
        if unfinished and grid.is_file() and yaml.safe_load(grid.read_text()) == config.record():
            return last
    return root / f"iteration_{(numbers[-1] + 1 if numbers else 1):03d}"


def run_grid(config: RevGridConfig, out: Path | str, command: list[str] | None = None) -> RevResult:
    """Generate, score and evaluate every cell into ``out`` (see the module docstring);
    ``command`` (the CLI's arguments) goes into ``notes.md``."""
    out = Path(out)
    cells = config.cells()  # every cell valid, the control file read, before any model loads
    texts = read_control(config.control) if config.control else None
    if (out / "results" / "results.json").is_file():
        raise UserError(f"{out} holds a finished REV grid; choose another --out or a --root")
    stored = out / "grid.yaml"
    if stored.is_file() and yaml.safe_load(stored.read_text()) != config.record():
        raise UserError(f"{out} holds another REV grid (see its grid.yaml); choose another --out")
    if out.exists() and not stored.is_file() and any(out.iterdir()):
        raise UserError(f"{out} already exists and is not a REV grid; choose another --out")
    write_yaml(stored, config.record())
    started = now()
    loading = LoadingSpec.parse(**{k: getattr(config, k) for k in LoadingSpec.model_fields})
    models = ModelCache(loading)
    with using_control(texts) if texts else nullcontext():
        for name, cell in cells.items():
            path = out / "cells" / name
            lm = models.get(cell.model_dump())
            if not Run(path).finished:
                generate_run(cell, path, resume=True, lm=lm)
            if not {"rev", "dtr", "length"} <= set(Run.open(path).traces().columns):
                score(lm, path, metrics="rev,dtr,length")
        evaluation = RevConfig(
            tuple(out / "cells" / name for name in cells),
            out / "results",
            resamples=config.resamples,
            folds=config.folds,
            seed=config.seed,
            ablation_questions=config.ablation_questions,
            loading=loading,
            control=config.control,
        )
        result = evaluate(evaluation, models=models, registered=False)
    summary = grid_summary(result)
    write_text(out / "notes.md", notes(out, command, config, result, summary))
    register(out, "experiment rev", {"experiment": "rev-grid", **config.record()}, summary, started)
    return result


def grid_summary(result: RevResult) -> dict:
    """What the registry keeps of a grid: cells, mean and best delta-AUC, mean REV AUROC,
    criteria passed and failed."""
    runs, passed = result.runs, result.criteria["passed"]
    return {
        "cells": len(runs),
        "delta_auc": _number(runs["delta_auc"].mean()),
        "delta_auc_max": _number(runs["delta_auc"].max()),
        "rev_auroc": _number(runs["rev_auroc"].mean()),
        "criteria_passed": int((passed == True).sum()),  # noqa: E712 (None is undecided)
        "criteria_failed": int((passed == False).sum()),  # noqa: E712
    }


def _number(value) -> float | None:
    """A float, or None for NaN (undefined: no correct or no wrong traces)."""
    return None if math.isnan(value) else round(float(value), 6)


def _markdown(frame) -> str:
    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        cells = [(f"{v:.4g}" if isinstance(v, float) else str(v)).replace("|", "\\|") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(
    out: Path, command: list[str] | None, config: RevGridConfig, result: RevResult, summary: dict
) -> str:
    """``notes.md`` of a grid: its command, its results, and a section to fill in."""
    shown = "thinkscope " + shlex.join(command) if command else "(called from Python)"
    runs = result.runs[["run", "model", "temperature", "n", "accuracy", "rev_auroc", "delta_auc"]]
    figures = "\n".join(f"- `{Path(f).relative_to(out)}`" for f in result.figures)
    lines = "\n".join(f"- {key}: {value}" for key, value in summary.items())
    return (
        f"# {out.name}\n\n## Command\n\n```bash\n{shown}\n```\n\n"
        f"Grid: {', '.join(config.models)} x T = {', '.join(f'{t:g}' for t in config.temperatures)}"
        f"; task {config.task}, {config.questions} questions x {config.n} samples, "
        f"{config.max_new_tokens} new tokens; control: {config.control or 'bundled'}.\n\n"
        f"## Results\n\n{lines}\n\n### Cells\n\n{_markdown(runs)}\n\n"
        f"### Success criteria\n\n{_markdown(result.criteria)}\n\n### Figures\n\n{figures}\n\n"
        "## Notes\n\n(what changed since the last iteration, what the results say, what next)\n"
    )
