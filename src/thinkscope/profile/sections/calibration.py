"""Calibration: how often the token at each rank is right, by the model's confidence, and what
sampling a token the model did not rank first does to the answer.

The grid and the power law come from teacher-forcing reference solutions
(:mod:`thinkscope.experiments.decoding.calibrate`) of the base run's task, or of
``reference_task`` when that task has none (the quick budget's ``demo-arith`` problems carry an
answer, not a worked solution). Accuracy by the number of low-rank tokens (sampled at rank >= 2,
the "k-sampled accuracy" of "Sample Smart, Not Hard") reads the base run's step logs
(:mod:`thinkscope.experiments.decoding.step_stats`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec, with_default
from thinkscope.profile.numbers import QUESTION_BOOTSTRAP, RESAMPLES, question_mean
from thinkscope.profile.section import Context, Section, SectionResult, Stat
from thinkscope.stats import cluster_bootstrap, fit_power_law, percentile_ci
from thinkscope.stats.auroc import bootstrap_indices
from thinkscope.tasks.spec import TaskSpec

if TYPE_CHECKING:
    import pandas as pd

POSITIONS = "positions.parquet"


class Sizes(Spec):
    """The calibration section's sizes (defaults: the quick budget). The grid's ranks and the
    fit's bins are ``thinkscope calibrate``'s (top 20, bins of 20 pairs or more); references
    follow the bare question (no worked examples, which would lengthen every pass)."""

    questions: int = with_default(TaskSpec, "questions", 32)
    reference_task: str = Field(
        "gsm8k:train", description="Whose references to teacher-force when the run's task has none."
    )


SIZES = {"quick": Sizes(), "standard": Sizes(questions=100), "full": Sizes(questions=200)}


def reference_config(ctx: Context, sizes: Sizes):
    """The calibration of the run's task, or of ``reference_task`` when the run's problems have
    no reference solution; with the problems and a note saying which (before any model loads)."""
    from thinkscope.experiments.decoding.calibrate import CalibrationConfig, reference_response
    from thinkscope.tasks.loaders import load_problems

    run, missing = ctx.protocol.run, []
    for task in dict.fromkeys((run.task, sizes.reference_task)):
        problems = load_problems(task, sizes.questions, run.seed, run.fields)
        try:
            for problem in problems:
                reference_response(problem, None)
        except UserError:
            missing.append(task)
            continue
        config = CalibrationConfig(
            model_spec=ctx.spec,
            task=task,
            questions=sizes.questions,
            seed=run.seed,
            prompt_style=run.prompt_style,
            template=run.template,
        )
        note = None
        if missing:
            note = (
                f"{missing[0]} has no reference solutions (its problems carry only an answer): "
                f"the grid and the fit teacher-force {len(problems)} of {task}'s instead"
            )
        return config, problems, note
    raise UserError(
        f"calibration: no reference solutions to teacher-force in {' or '.join(missing)}"
    )


def force(ctx: Context, config, problems) -> pd.DataFrame:
    """The teacher-forced positions (``calibrate.teacher_force`` rows), kept in the section's
    folder so that a rerun reuses them."""
    import pandas as pd

    from thinkscope.core.atomic import write_parquet
    from thinkscope.experiments.decoding.calibrate import encode_references, teacher_force

    path = ctx.folder / POSITIONS
    if path.is_file():
        return pd.read_parquet(path)
    lm, size = ctx.lm(), config.batch_size
    encoded = encode_references(lm, config, problems)
    by_length = sorted(encoded, key=lambda row: len(row[1]) + len(row[2]))  # less padding
    rows = [
        row
        for start in range(0, len(by_length), size)
        for row in teacher_force(lm, by_length[start : start + size], config.top_k)
    ]
    order = {problem.id: i for i, problem in enumerate(problems)}
    rows.sort(key=lambda row: order[row["problem_id"]])
    write_parquet(path, pd.DataFrame(rows))
    return pd.read_parquet(path)


def _per_problem(positions) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each problem's ``top_probs`` ``[T, k]`` and whether each top entry is its reference."""
    return [
        (
            np.asarray(list(probs), dtype=np.float64),
            np.asarray(list(ids)) == np.asarray(ref)[:, None],
        )
        for probs, ids, ref in zip(
            positions["top_probs"], positions["top_ids"], positions["ref_ids"], strict=True
        )
    ]


def _fit(p, c) -> tuple[float, float]:
    try:
        return fit_power_law(p, c)
    except ValueError:
        return math.nan, math.nan


def power_law_replicates(positions, min_pairs: int, resamples: int = RESAMPLES, seed: int = 0):
    """``[resamples, 2]``: (A, B) of the power law refitted to the problems resampled with
    replacement (the plan of ``stats.bootstrap_indices``), binned as
    ``calibrate.power_law_points``; NaN where a resample leaves fewer than two bins."""
    import pandas as pd

    from thinkscope.experiments.decoding.calibrate import FIT_BIN_DECADES

    frames = []
    for i, (probs, hit) in enumerate(_per_problem(positions)):
        ok = probs.ravel() > 0
        p, c = probs.ravel()[ok], hit.ravel()[ok].astype(np.float64)
        bins = np.floor(np.log10(p) / FIT_BIN_DECADES).astype(int)
        frames.append(pd.DataFrame({"problem": i, "bin": bins, "p": p, "c": c}))
    sums = (
        pd.concat(frames)
        .groupby(["problem", "bin"])
        .agg(p=("p", "sum"), c=("c", "sum"), n=("c", "size"))
    )
    table = sums.unstack(fill_value=0).reindex(range(len(positions)), fill_value=0)
    sum_p, sum_c, count = (table[k].to_numpy(np.float64) for k in ("p", "c", "n"))
    fits = []
    for idx in bootstrap_indices(len(positions), resamples, seed):
        weights = np.zeros((len(idx), len(positions)))
        np.add.at(weights, (np.arange(len(idx))[:, None], idx), 1.0)
        for n, p, c in zip(weights @ count, weights @ sum_p, weights @ sum_c, strict=True):
            keep = n >= min_pairs
            fits.append(_fit(p[keep] / n[keep], c[keep] / n[keep]))
    return np.asarray(fits, dtype=np.float64)


def calibration(positions, config, model: str):
    """Stats, tables and the figure inputs of the grid and the power law of ``positions``."""
    from thinkscope.experiments.decoding.calibrate import (
        grid_of,
        power_law_points,
        unconditional_of,
    )

    problems = _per_problem(positions)
    probs = np.concatenate([p for p, _ in problems])
    hits = np.concatenate([h for _, h in problems])
    ids = np.repeat(positions["problem_id"].to_numpy(), [len(p) for p, _ in problems])
    top1 = hits[:, 0].astype(np.float64)
    summary = {
        "model": model,
        "task": config.task,
        "tokens": len(probs),
        "grid": grid_of(positions, config.top_k),
        "unconditional": unconditional_of(positions, config.top_k),
        "fit_points": power_law_points(probs, hits, config.min_pairs),
    }
    stats = {
        "top1.accuracy": question_mean(ids, top1),
        "top1.overconfidence": question_mean(ids, probs[:, 0] - top1),
    }
    points = summary["fit_points"]
    a, b = _fit(points["p"], points["c"])
    if math.isnan(b):
        why = (
            f"too few (p, c) bins to fit the power law: {sum(c > 0 for c in points['c'])} "
            f"bin(s) with a correct pair and >= {config.min_pairs} pairs"
        )
        stats["power_law.A"] = stats["power_law.B"] = Stat.undefined(why, len(problems))
    else:
        summary |= {"A": a, "B": b}
        replicates = power_law_replicates(positions, config.min_pairs)
        fitted = int((~np.isnan(replicates[:, 1])).sum())
        method = f"bootstrap over problems ({fitted} of {len(replicates)} resamples fit)"
        for name, value, column in (("A", a, 0), ("B", b, 1)):
            lo, hi = percentile_ci(replicates[:, column])
            stats[f"power_law.{name}"] = Stat(value, lo, hi, n=len(problems), method=method)
    grid = summary["grid"]
    rows = zip(grid["bins"], grid["count"], grid["prob"], strict=True)
    overall = summary["unconditional"]
    tables = {
        "grid": [
            {"pmax": label, "tokens": n, **{f"rank {r + 1}": v for r, v in enumerate(row)}}
            for label, n, row in [*rows, ("all", overall["count"], overall["prob"])]
        ],
        "power law": [
            {"p": p, "c": c, "pairs": n, "fit": 10**a * p**b if not math.isnan(b) else None}
            for p, c, n in zip(points["p"], points["c"], points["n"], strict=True)
        ],
    }
    return stats, tables, summary


def low_rank(traces) -> tuple[dict[str, Stat], object]:
    """Accuracy of samples with no token sampled at rank >= 2 against those with some, the
    drop between them (paired resamples of questions) and accuracy by that count."""
    from thinkscope.experiments.decoding.step_stats import accuracy_by_count, off_top_counts

    ids = traces["problem_id"].astype(str).to_numpy()
    correct = traces["correct"].to_numpy(np.float64)
    counts = off_top_counts(traces)
    some = counts > 0
    stats = {
        "low_rank.samples": question_mean(ids, some.astype(np.float64)),
        "low_rank.tokens": question_mean(ids, counts.astype(np.float64), unit="tokens"),
    }
    split = {"no_low_rank": ~some, "low_rank": some}
    for name, mask in split.items():
        if mask.any():
            stats[f"accuracy.{name}"] = question_mean(ids, np.where(mask, correct, np.nan))
        else:
            label = "no" if name == "low_rank" else "every"
            why = f"{label} sample sampled a token at rank >= 2"
            stats[f"accuracy.{name}"] = Stat.undefined(why, 0)
    why = None
    if np.ptp(correct) == 0:
        why = f"every sample is {'correct' if correct[0] else 'wrong'}"
    elif not (some.any() and (~some).any()):
        why = stats["accuracy.low_rank" if not some.any() else "accuracy.no_low_rank"].note
    if why:
        stats["accuracy.low_rank_drop"] = Stat.undefined(why, len(ids))
    else:
        (zero, zeros), (rest, rests) = (
            cluster_bootstrap(ids, np.where(mask, correct, np.nan), RESAMPLES)
            for mask in split.values()
        )
        lo, hi = percentile_ci(zeros - rests)  # the same resamples: the seed is shared
        method = f"{QUESTION_BOOTSTRAP} (paired resamples)"
        stats["accuracy.low_rank_drop"] = Stat(zero - rest, lo, hi, n=len(ids), method=method)
    return stats, accuracy_by_count(counts, correct)


def _records(table) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in table.to_dict("records")
    ]


def _figures(ctx: Context, summary: dict, by_count) -> tuple[list, list[str]]:
    import matplotlib

    from thinkscope.core.figures import STYLE
    from thinkscope.experiments.decoding import figures

    refs, notes = [], []
    with matplotlib.rc_context(STYLE):
        heat = figures.calibration_heatmap(summary)
        caption = "How often the rank-r token is the reference token, by top-1 probability."
        refs.append(ctx.figure(heat, "calibration_grid", caption))
        if "B" in summary:
            caption = "Share of top-k tokens that are the reference, by their probability."
            refs.append(ctx.figure(figures.calibration_fit(summary), "power_law", caption))
        else:
            notes.append("the power law could not be fitted: no fit figure")
        if (by_count["n"] > 0).sum() > 1:
            fig = figures.accuracy_bars(
                by_count, "count", "sampled tokens at rank >= 2", "Accuracy by low-rank tokens"
            )
            caption = "Accuracy of samples with exactly k tokens sampled at rank >= 2."
            refs.append(ctx.figure(fig, "low_rank", caption))
        else:
            notes.append("every sample has the same number of low-rank tokens: no bar chart")
    return refs, notes


def measure(ctx: Context) -> SectionResult:
    from thinkscope.experiments.decoding.step_stats import require_steps
    from thinkscope.runstore.folder import Run

    sizes = ctx.protocol.sizes("calibration")
    traces = Run(ctx.base).traces()
    require_steps(traces, ctx.base)
    config, problems, note = reference_config(ctx, sizes)
    notes = [note] if note else []
    positions = force(ctx, config, problems)
    stats, tables, summary = calibration(positions, config, ctx.spec.model)
    low, by_count = low_rank(traces)
    stats |= low
    tables["accuracy by low-rank tokens"] = _records(by_count)
    figures, more = _figures(ctx, summary, by_count)
    return SectionResult(
        stats=stats,
        headline=["power_law.B", "accuracy.low_rank_drop"],
        tables=tables,
        figures=figures,
        notes=notes + more,
    )


def _estimate(protocol) -> float:
    """Seconds on the reference machine: about one per teacher-forced reference, plus figures."""
    return 5.0 + protocol.sizes("calibration").questions


SECTION = Section("calibration", "Calibration", measure, estimate=_estimate)
