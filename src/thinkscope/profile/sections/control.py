"""Control: accuracy and DTR of answers while the model is steered along its correct-minus-wrong
direction (the representations section's, at the middle layer, scaled by each strength), and
while one layer at a time is ablated (its block's update zeroed, for a few evenly spaced layers).

The answers are sampled with the base run's settings (fewer tokens) on questions of the
protocol's task held out from the base run's, which the direction was fitted on, and graded; DTR
is measured with the intervention active (the library's sweep). Every cell (one strength, one
ablated layer) is ``cells/NAME.parquet``, reused when a resumed profile finds it. Each question
gets the same sample seeds in every cell, so cells are compared question by question.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, field_validator

from thinkscope.core.spec import Spec, with_default
from thinkscope.generation.spec import SamplingSpec
from thinkscope.profile.numbers import question_mean
from thinkscope.profile.section import Context, Section, SectionResult, Stat
from thinkscope.profile.sections.representations import NAME as REPRESENTATIONS
from thinkscope.profile.sections.representations import direction_path
from thinkscope.tasks.spec import TaskSpec

if TYPE_CHECKING:
    import pandas as pd

NAME = "control"
MEASURES = ("accuracy", "dtr")
ANSWER_TOKEN_S = 0.03


class Sizes(Spec):
    """The held-out questions, samples and tokens of each cell, the steering strengths and the
    number of ablated layers."""

    questions: int = with_default(TaskSpec, "questions", 8)  # held out from the base run's
    n: int = with_default(SamplingSpec, "n", 2)
    max_new_tokens: int = with_default(SamplingSpec, "max_new_tokens", 24)
    steer_strengths: tuple[float, ...] = Field(
        (-8.0, -4.0, 0.0, 4.0, 8.0),
        description="Steering strengths, times the raw correct-minus-wrong direction; with 0.",
    )
    ablate: int = Field(4, ge=1, description="Evenly spaced layers ablated one at a time.")

    @field_validator("steer_strengths")
    @classmethod
    def _with_zero(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if 0.0 not in value or len(value) < 2 or len(set(value)) < len(value):
            raise ValueError(f"needs 0, another strength and no repeats, got {value}")
        return tuple(sorted(value))


SIZES = {
    "quick": Sizes(),
    "standard": Sizes(questions=16, n=4, max_new_tokens=256, ablate=6),
    "full": Sizes(
        questions=32,
        n=4,
        max_new_tokens=512,
        steer_strengths=(-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0),
        ablate=8,
    ),
}


def ablated_layers(n_layers: int, count: int) -> list[int]:
    """``count`` evenly spaced layers of 1..n_layers, first and last included."""
    return sorted({round(x) for x in np.linspace(1, n_layers, min(count, n_layers))})


def no_direction(profile: Path) -> str:
    """Why there is no direction to steer along, from the representations section's result."""
    from thinkscope.profile.runner import read_section

    done = read_section(profile, REPRESENTATIONS)
    if done is None:
        return "the representations section has not run: no direction to steer along"
    result = done[0]
    if result.skipped:
        return f"the representations section was skipped ({result.skipped})"
    return f"no correct-vs-wrong direction to steer along: {result.stats['probe.auroc'].note}"


def cell(ctx: Context, name: str, hooks: Callable, problems, config) -> pd.DataFrame:
    """One cell's answers (``problem_id``, ``sample_idx``, ``correct``, ``dtr``, ``n_tokens``,
    ``completion``; ``accuracy``: ``correct`` as 0/1): read back when a previous attempt
    finished it, else generated with the handle ``hooks()`` registers active, graded, scored
    and saved."""
    import pandas as pd

    from thinkscope.core.atomic import write_parquet
    from thinkscope.interp.sweep import answers

    path = ctx.folder / "cells" / f"{name}.parquet"
    if path.is_file():
        frame = pd.read_parquet(path)
    else:
        traces, dtrs = answers(ctx.lm(), problems, config, hooks())
        frame = pd.DataFrame([t.row() for t in traces])[
            ["problem_id", "sample_idx", "correct", "n_tokens", "completion"]
        ].assign(dtr=dtrs)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, frame)
    return frame.assign(accuracy=frame["correct"].astype(float))


def curve_row(frame: pd.DataFrame) -> dict:
    """Accuracy and DTR of a cell with their CIs over questions, and its mean length."""
    row = {"n": len(frame)}
    for column in MEASURES:
        stat = question_mean(frame["problem_id"], frame[column].astype(float))
        row.update({column: stat.value, f"{column}_lo": stat.lo, f"{column}_hi": stat.hi})
    return {**row, "tokens": float(frame["n_tokens"].mean())}


def paired_delta(cell_: pd.DataFrame, base: pd.DataFrame, column: str, note: str) -> Stat:
    """Mean over questions of the question's mean ``column`` in ``cell_`` minus in ``base``,
    its CI from resampling questions; questions undefined in either are left out."""
    means = [f.groupby("problem_id")[column].mean() for f in (cell_, base)]
    delta = (means[0] - means[1]).dropna()
    if delta.empty:
        return Stat.undefined(f"{column} is undefined on every question ({note})")
    stat = question_mean(delta.index, delta.to_numpy())
    stat.note = note
    return stat


def _settings(ctx: Context, sizes: Sizes):
    """The held-out problems and the sampling settings of every cell."""
    from thinkscope.generation.pipeline import GenerateConfig
    from thinkscope.tasks.loaders import load_problems

    run = ctx.protocol.run
    config = GenerateConfig(
        **ctx.spec.model_dump(),
        **run.model_dump(exclude={"questions", "n", "max_new_tokens", "log_steps"}),
        questions=sizes.questions,
        n=sizes.n,
        max_new_tokens=sizes.max_new_tokens,
    )
    problems = load_problems(run.task, run.questions + sizes.questions, run.seed)
    return problems[run.questions :], config


def _figure(ctx: Context, table: list[dict], x: str, name: str, base: dict | None, caption: str):
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame(table)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, column in zip(axes, MEASURES, strict=True):
        ok = frame[column].notna()
        mid, lo, hi = (
            frame.loc[ok, c].to_numpy(float) for c in (column, f"{column}_lo", f"{column}_hi")
        )
        ax.errorbar(frame.loc[ok, x], mid, yerr=[mid - lo, hi - mid], marker="o", capsize=3)
        if base is not None and base[column] is not None:
            ax.axhline(base[column], color="#8c8c8c", lw=0.8, ls="--", label="no ablation")
            ax.legend()
        ax.set_xticks(frame[x])
        ax.set(xlabel=x, ylabel=column.replace("dtr", "DTR"))
    fig.tight_layout()
    return ctx.figure(fig, name, caption)


def measure(ctx: Context) -> SectionResult:
    from thinkscope.interp.directions import Directions
    from thinkscope.models.hooks.interventions import ablate_layers, steer

    sizes = ctx.protocol.sizes(NAME)
    if not direction_path(ctx.profile).is_file():
        return SectionResult(skipped=no_direction(ctx.profile))
    direction = Directions.load(direction_path(ctx.profile))
    layer = direction.layers[len(direction.layers) // 2]
    vector = direction.at(layer, unit=False)
    problems, config = _settings(ctx, sizes)
    lm = ctx.lm()
    steered = {
        s: cell(ctx, f"steer_{s:+g}", lambda s=s: steer(lm, {layer: vector}, s), problems, config)
        for s in sizes.steer_strengths
    }
    ablated = {
        k: cell(ctx, f"ablate_{k:03d}", lambda k=k: ablate_layers(lm, [k]), problems, config)
        for k in ablated_layers(lm.n_layers, sizes.ablate)
    }
    base = steered[0.0]
    norm = float(vector.norm())
    stats = {
        f"baseline.{column}": question_mean(base["problem_id"], base[column].astype(float))
        for column in MEASURES
    }
    for sign, s in (("plus", max(sizes.steer_strengths)), ("minus", min(sizes.steer_strengths))):
        if s == 0:
            continue
        note = f"strength {s:+g} (x the direction's norm {norm:.3g}) at layer {layer}, minus 0"
        for column in MEASURES:
            stats[f"steer.{column}.{sign}"] = paired_delta(steered[s], base, column, note)
    drops = {
        k: paired_delta(f, base, "accuracy", f"layer {k} ablated minus none: the largest drop")
        for k, f in ablated.items()
    }
    worst = min(drops, key=lambda k: drops[k].value if drops[k].value is not None else np.inf)
    stats["ablate.accuracy.worst"] = drops[worst]
    steering = [{"strength": s, **curve_row(f)} for s, f in steered.items()]
    ablation = [{"layer": k, **curve_row(f)} for k, f in ablated.items()]
    figures = [
        _figure(
            ctx,
            steering,
            "strength",
            "steering",
            None,
            f"Accuracy and DTR against the strength of steering along the correct-minus-wrong "
            f"direction at layer {layer} (95% CIs over questions).",
        ),
        _figure(
            ctx,
            ablation,
            "layer",
            "ablation",
            curve_row(base),
            "Accuracy and DTR with one layer's block update zeroed (95% CIs over questions); "
            "dashed: no ablation.",
        ),
    ]
    headline = [k for k in ("steer.accuracy.plus", "steer.accuracy.minus") if k in stats]
    return SectionResult(
        stats=stats,
        headline=headline,
        tables={"steering": steering, "ablation": ablation},
        figures=figures,
    )


def estimate(protocol) -> float:
    """Seconds: every cell samples and scores ``questions x samples`` answers, at about 30 ms
    per answer and token allowed (generation and the DTR lens, measured on the bundled model)."""
    sizes = protocol.sizes(NAME)
    cells = len(sizes.steer_strengths) + min(sizes.ablate, 30)
    return cells * sizes.questions * sizes.n * sizes.max_new_tokens * ANSWER_TOKEN_S


SECTION = Section(NAME, "Control", measure, estimate=estimate)
