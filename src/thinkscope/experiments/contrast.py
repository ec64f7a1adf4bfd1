"""Math against easy: the same model and settings on two tasks (``--tasks MATH,EASY``), their
DTR, accuracy and length with 95% bootstrap CIs, and the difference first minus second.

The DTR explorer found DTR 3-6 points higher on math than on easy problems under every
condition. The CIs resample questions (each with all its samples), since the samples of one
question are not independent; the difference's CI pairs independent resamples of each task.

Files (beside the experiment's own, see :mod:`~thinkscope.experiments.common`)::

    OUT/runs/task<i>-<name>/   one scored run per task
    OUT/results.csv            metric, task, estimate, ci_low, ci_high, questions, traces
    OUT/figures/contrast.png   the three metrics by task, with their CIs
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from thinkscope.experiments.common import Experiment, dtr, jsd_matrix, plt, settling_depths
from thinkscope.stats import cluster_bootstrap, percentile_ci
from thinkscope.tasks.loaders import load_problems

METRICS = {"dtr": "DTR", "accuracy": "accuracy", "tokens": "completion tokens"}


def _per_trace(exp: Experiment, index: int, task: str) -> pd.DataFrame:
    """DTR, correctness and length of each trace of ``task``'s scored run."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", task.rsplit("/", 1)[-1])[:40]
    _, traces, tokens = exp.scored_run(f"task{index}-{name}", task=task)
    config = exp.config
    ratios = [
        dtr(settling_depths(p, config.g, config.base), p.shape[1], config.rho)
        for p in jsd_matrix(tokens)
    ]
    return pd.DataFrame(
        {
            "problem_id": traces["problem_id"].to_numpy(),
            "dtr": ratios,
            "accuracy": traces["correct"].to_numpy(dtype=np.float64),
            "tokens": traces["n_tokens"].to_numpy(dtype=np.float64),
        }
    )


def contrast(exp: Experiment) -> pd.DataFrame:
    """DTR, accuracy and length of ``config.tasks`` (the same model and settings), each with
    a 95% question-bootstrap CI, and the difference first minus second."""
    tasks = exp.config.tasks
    for task in tasks:  # an unknown task or a missing file: refused before any model loads
        load_problems(task, exp.config.questions, exp.config.seed, exp.config.fields or None)
    frames = {task: _per_trace(exp, i, task) for i, task in enumerate(tasks)}
    rows, seed = [], exp.config.seed
    for metric in METRICS:
        replicates = []
        for offset, (task, frame) in enumerate(frames.items()):
            estimate, reps = cluster_bootstrap(
                frame["problem_id"], frame[metric], seed=seed + offset
            )
            replicates.append((estimate, reps))
            rows.append(_row(metric, task, estimate, reps, frame))
        (a, reps_a), (b, reps_b) = replicates
        both = pd.concat(frames.values())
        rows.append(_row(metric, f"{tasks[0]} - {tasks[1]}", a - b, reps_a - reps_b, both))
    table = pd.DataFrame(rows)
    return exp.finish(table, exp.figure("contrast", _figure(table, tasks, exp)))


def _row(metric: str, task: str, estimate: float, reps: np.ndarray, frame: pd.DataFrame) -> dict:
    lo, hi = percentile_ci(reps)
    return {
        "metric": metric,
        "task": task,
        "estimate": estimate,
        "ci_low": lo,
        "ci_high": hi,
        "questions": frame["problem_id"].nunique(),
        "traces": len(frame),
    }


def _figure(table: pd.DataFrame, tasks: tuple[str, ...], exp: Experiment):
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.2 * len(METRICS), 3.2))
    for ax, (metric, label) in zip(axes, METRICS.items(), strict=True):
        part = table[(table["metric"] == metric) & table["task"].isin(tasks)]
        estimate = part["estimate"].to_numpy()
        errors = np.abs(part[["ci_low", "ci_high"]].to_numpy().T - estimate)
        ax.bar(range(len(part)), estimate, yerr=errors, capsize=4, color=["#c44e52", "#4c72b0"])
        ax.set_xticks(range(len(part)), [t[:18] for t in part["task"]], fontsize=8)
        diff = table[(table["metric"] == metric) & ~table["task"].isin(tasks)].iloc[0]
        ax.set_title(
            f"{label}\ndiff {diff.estimate:+.3g} [{diff.ci_low:+.3g}, {diff.ci_high:+.3g}]",
            fontsize=9,
        )
    config = exp.config
    fig.suptitle(f"{tasks[0]} vs {tasks[1]} (g={config.g}, rho={config.rho}; 95% CIs)", fontsize=10)
    fig.tight_layout()
    return fig
