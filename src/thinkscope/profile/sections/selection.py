"""Selection: Think@n, Self-Certainty@n, DeepConf and Cons@n accuracy against the tokens they
generate and the lens compute they spend.

The base run cannot stand in for the methods: Think@n stops the weak samples for real (it
scores each sample's prefix from the hidden states while sampling, then finishes only the best
from their KV cache), and DeepConf online cuts samples as their confidence drops. So the section
runs the library's selection experiment (:func:`thinkscope.select.experiment.run_selection`)
on the protocol's task and sampling, with its own pool sizes, into ``sections/selection/select``;
it resumes from that experiment's shards. Every method draws the same seeded samples.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from thinkscope.core.spec import Spec, with_default
from thinkscope.generation.spec import SamplingSpec
from thinkscope.profile.numbers import question_mean
from thinkscope.profile.section import Context, Section, SectionResult, Stat
from thinkscope.select.spec import SelectKnobs
from thinkscope.tasks.spec import TaskSpec

if TYPE_CHECKING:
    import pandas as pd

THINK, CONS = "think@n", "cons@n"
DIFF = f"diff.{THINK}-{CONS}"
FOLDER = "select"


class Sizes(Spec):
    """The selection pool: questions of the protocol's task, samples each, Think@n's prefix
    (tokens scored before the weak samples stop), repeats (pools of fresh samples) and
    DeepConf's window (tokens); the rest is the protocol's base run."""

    questions: int = with_default(TaskSpec, "questions", 10)
    n: int = with_default(SamplingSpec, "n", 8)
    prefix_tokens: int = with_default(SelectKnobs, "prefix_tokens", 8)
    repeats: int = with_default(SelectKnobs, "repeats", 1)
    window: int = with_default(SelectKnobs, "window", 16)


SIZES = {
    "quick": Sizes(),
    "standard": Sizes(questions=100, prefix_tokens=50, window=128),
    "full": Sizes(questions=500, n=16, prefix_tokens=50, window=256),
}


def select_config(ctx: Context):
    """The selection experiment of the profile: the model, the base run's task and sampling,
    this section's sizes (a one-line error for a prefix longer than a sample)."""
    from thinkscope.select.experiment import SelectConfig

    sizes = ctx.protocol.sizes("selection")
    run = ctx.protocol.run
    shared = (set(TaskSpec.model_fields) | set(SamplingSpec.model_fields)) - {
        "questions",
        "n",
        "top_logprobs",  # DeepConf's k: the experiment's own default
    }
    return SelectConfig.parse(
        **ctx.spec.model_dump(), **run.model_dump(include=shared), **sizes.model_dump()
    )


def _lens_gflop(rows: pd.DataFrame) -> Stat:
    """Lens GFLOPs per question: the experiment measures them per unit of questions and shares
    them equally among its questions, so they carry no per-question values."""
    return Stat(
        float(rows["lens_gflop"].mean()),
        n=len(rows),
        unit="GFLOP",
        method="unembedding FLOPs of the prefix scores, per unit of questions over its questions",
    )


def informative(outcomes: pd.DataFrame) -> int:
    """Pools (question, repeat) holding both a correct and a wrong sample: only there can two
    methods give different answers."""
    cons = outcomes[outcomes["method"] == CONS]
    return int(sum(0 < sum(c) < len(c) for c in cons["sample_correct"]))


def paired_difference(outcomes: pd.DataFrame, method: str, reference: str = CONS) -> Stat:
    """``method``'s accuracy minus ``reference``'s, paired by question and repeat, with the CI of
    resampling whole questions; undefined where no pool mixes correct and wrong samples (every
    method then answers alike, and the difference is 0 by construction)."""
    pools = informative(outcomes)
    if pools == 0:
        return Stat.undefined(
            "no question's samples are partly correct, so every method gives the same answers",
            n=int((outcomes["method"] == reference).sum()),
        )
    keys = ["repeat", "question_id"]
    mine = outcomes[outcomes["method"] == method].set_index(keys)["correct"]
    theirs = outcomes[outcomes["method"] == reference].set_index(keys)["correct"]
    diff = (mine - theirs.reindex(mine.index)).reset_index()
    return question_mean(diff["question_id"], diff["correct"].to_numpy(np.float64))


def selection_stats(outcomes: pd.DataFrame) -> dict[str, Stat]:
    """Per method: accuracy and generated tokens per question (means over questions, CIs over
    questions) and lens GFLOPs per question; Think@n's tokens over Cons@n's, and Think@n's
    accuracy minus Cons@n's, paired."""
    from thinkscope.select.experiment import METHODS

    stats: dict[str, Stat] = {}
    for method in (m for m in METHODS if m in set(outcomes["method"])):
        rows = outcomes[outcomes["method"] == method]
        ids = rows["question_id"]
        stats[f"accuracy.{method}"] = question_mean(ids, rows["correct"].to_numpy(np.float64))
        tokens = rows["tokens"].to_numpy(np.float64)
        stats[f"tokens.{method}"] = question_mean(ids, tokens, unit="tokens")
        stats[f"lens_gflop.{method}"] = _lens_gflop(rows)
    spent = outcomes.groupby("method")["tokens"].sum()
    stats[f"relative_cost.{THINK}"] = Stat(
        spent[THINK] / spent[CONS],
        n=int((outcomes["method"] == THINK).sum()),
        unit="x",
        method="generated tokens summed over questions, Think@n over Cons@n",
    )
    stats[DIFF] = paired_difference(outcomes, THINK)
    return stats


WALL_CLOCK = ("wall_s", "lens_s")  # timings: the card keeps them to the cost section


def _records(table: pd.DataFrame, stats: dict[str, Stat]) -> list[dict]:
    """The experiment's summary rows with each accuracy's CI, without its wall-clock columns
    (so a resumed card equals an uninterrupted one); NaN (no spread over one repeat) as null."""
    records = []
    for row in table.drop(columns=list(WALL_CLOCK), errors="ignore").to_dict("records"):
        accuracy = stats[f"accuracy.{row['method']}"]
        row = {**row, "accuracy_lo": accuracy.lo, "accuracy_hi": accuracy.hi}
        records.append(
            {
                k: None if isinstance(v, float) and not math.isfinite(v) else v
                for k, v in row.items()
            }
        )
    return records


def _figure(ctx: Context, stats: dict[str, Stat], methods: list[str], title: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), sharey=True)
    for method, marker in zip(methods, "osD^vP*X", strict=False):
        acc = stats[f"accuracy.{method}"]
        yerr = [[acc.value - acc.lo], [acc.hi - acc.value]] if acc.lo is not None else None
        costs = (stats[f"tokens.{method}"], stats[f"lens_gflop.{method}"])
        for ax, x in zip(axes, costs, strict=True):
            ax.errorbar(x.value, acc.value, yerr=yerr, fmt=marker, capsize=3, label=method)
    axes[0].set(xlabel="generated tokens per question", ylabel="accuracy (95% CI)")
    axes[1].set(xlabel="lens GFLOP per question (prefix scores)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return ctx.figure(
        fig,
        "selection",
        "Accuracy of each selection method against the tokens it generated and the lens "
        "compute it spent, per question (bars: 95% CI over questions).",
    )


def measure(ctx: Context) -> SectionResult:
    import pandas as pd

    from thinkscope.select.experiment import run_selection

    config = select_config(ctx)
    out = ctx.folder / FOLDER
    table = run_selection(config, out, resume=True, lm=ctx.lm(), show_progress=False)
    outcomes = pd.read_parquet(out / "outcomes.parquet")
    stats = selection_stats(outcomes)
    pools = informative(outcomes)
    notes = [
        f"{config.questions} questions x {config.n} samples x {config.repeats} repeat(s) of "
        f"{config.task}, {config.max_new_tokens} new tokens at most; Think@n ranks samples by "
        f"the DTR (g={config.g}, rho={config.rho}) of their first {config.prefix_tokens} "
        f"tokens and finishes the top {config.keep_ratio:.0%}; tokens count every sampled "
        "token, pruned prefixes included.",
        f"{pools} of {len(outcomes[outcomes['method'] == CONS])} pools hold both correct and "
        "wrong samples; only those can separate the methods.",
    ]
    if int(table["pool_mismatches"].sum()):
        notes.append(
            "some samples differ between methods (batch-shape float noise): "
            f"{int(table['pool_mismatches'].sum())} in all"
        )
    figures = []
    if pools:
        methods = list(table["method"])
        title = f"{config.model} on {config.task}, n={config.n}, prefix {config.prefix_tokens}"
        figures.append(_figure(ctx, stats, methods, title))
    else:
        notes.append("no figure: with no partly correct question every method scores alike")
    return SectionResult(
        stats=stats,
        headline=[f"accuracy.{THINK}", DIFF],
        tables={"methods": _records(table, stats)},
        figures=figures,
        notes=notes,
    )


def _estimate(protocol) -> float:
    """Seconds on the reference machine, proportional to the pool's samples and their length:
    16 questions x 8 samples of the quick task took 316 s on about one of its two cores
    (the machine shared; not yet measured idle), so about 1.3 s a sample on both."""
    sizes = protocol.sizes("selection")
    return 1.3 * sizes.questions * sizes.n * sizes.repeats * protocol.run.max_new_tokens / 48


SECTION = Section("selection", "Selection", measure, estimate=_estimate)
