"""What predicts correctness: the AUROC (with its CI) of DTR, the confidence metrics, length and
REV for a correct answer, their partial r against length and perplexity, and DeLong's test of
DTR against the best baseline (of the metrics that read no intermediate layer, the one with
the highest AUROC). The metric table is :func:`thinkscope.analysis.table.metric_table` on the
base run.

REV's ablation passes are costly: on this 2-core machine (otherwise idle, REV's calibration
cached) REV of the quick base run's first 2 questions (16 traces of <= 48 tokens after a few-shot
prompt, 30 layers, 24 circuit heads) took nearly all of this section's 92 s, about 5.5 s per
trace, so the whole quick base run (256 traces) would take about 24 minutes. REV is therefore
scored on the base run's first ``rev_questions`` questions only (a run folder of their traces in
this section's folder, scored in place and reused when the profile resumes); its z-scores are
over those traces. A model without attention gets no REV, and a note saying why.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from pydantic import Field

from thinkscope.core.spec import Spec
from thinkscope.profile.numbers import RESAMPLES, auroc_stat
from thinkscope.profile.section import Context, Section, SectionResult, Stat

REV = "rev"
PARTIAL = "partial Pearson r with correctness given length and perplexity"


class Sizes(Spec):
    """How much of the base run REV is scored on."""

    rev_questions: int = Field(
        2, ge=1, description="questions of the base run (the first, by id) REV is scored on"
    )


SIZES = {
    "quick": Sizes(),
    "standard": Sizes(rev_questions=8),
    "full": Sizes(rev_questions=16),
}
REV_SECONDS = 5.5  # per trace on the reference machine (see the module docstring)


def rev_run(base: Path, folder: Path, questions: int) -> Path:
    """A run folder under ``folder`` holding the base run's traces of its first ``questions``
    question ids (sorted), with the base run's scores; made once, then reused."""
    from thinkscope.runstore.folder import Run

    path = folder / "rev-run"
    if Run(path).traces_path.is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    traces = Run(base).traces()
    chosen = sorted(traces["problem_id"].astype(str).unique())[:questions]
    for name in ("config.yaml", "timing.json", "scores.json"):
        shutil.copyfile(base / name, path / name)
    Run(path).write_traces(traces[traces["problem_id"].astype(str).isin(chosen)])  # written last
    return path


def score_rev(ctx: Context, questions: int) -> tuple[Path | None, str]:
    """Score REV on the subset run; ``(None, why)`` when the model has no part REV needs."""
    from thinkscope.core.errors import UserError
    from thinkscope.metrics import check_applicable, parse_metrics
    from thinkscope.scoring import score

    lm = ctx.lm()
    try:
        check_applicable(lm, parse_metrics(REV))
    except UserError as err:
        return None, f"REV is not measured: {err}"
    path = rev_run(ctx.base, ctx.folder, questions)
    score(lm, path, metrics=REV, show_progress=False)
    return path, ""


def _partial(row: dict) -> Stat:
    if row["partial_r"] is None:
        return Stat.undefined(row["note"] or "partial r undefined", row["n"])
    return Stat(row["partial_r"], n=row["n"], method=PARTIAL, note=f"p = {row['partial_p']:.3g}")


def is_baseline(scored, column: str) -> bool:
    """Whether ``column``'s metric reads no intermediate layer through the lens (no settling
    threshold, no full layer profile): length, the confidence metrics and REV are baselines of
    DTR; the settling depths and top-k agreement are DTR's own family."""
    from thinkscope.metrics import spec

    entry = scored.metrics[column]
    needs = spec(entry["metric"], **entry.get("params", {})).needs()
    return not (needs.thresholds or needs.full)


def delong_stat(dtr, other, correct, name: str) -> Stat:
    """AUROC(DTR) - AUROC(``name``) with its DeLong 95% CI and p (undefined with the reason)."""
    from thinkscope.stats import delong_test

    result = delong_test(dtr, other, correct)
    if result.undefined_reason:
        return Stat.undefined(result.undefined_reason, result.n)
    half = 1.959964 * math.sqrt(result.var)
    return Stat(
        result.diff,
        result.diff - half,
        result.diff + half,
        n=result.n,
        method="DeLong (paired)",
        note=f"AUROC(dtr) - AUROC({name}); p = {result.p:.3g}",
    )


def _records(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))  # NaN -> None


def _reported(scored) -> list[str]:
    """DTR, the confidence metrics, length and REV: the columns given a stat of their own."""
    from thinkscope.metrics import GROUPS

    wanted = (scored.dtr_column, *GROUPS["confidence"], "length", REV)
    return [c for c in wanted if c in scored.metrics]


def _stats(scored, rows: dict[str, dict], columns: list[str]) -> dict[str, Stat]:
    stats = {}
    for column in columns:
        stats[f"auroc.{column}"] = auroc_stat(scored.traces[column], scored.correct)
        if column != "length":
            stats[f"partial_r.{column}"] = _partial(rows[column])
    return stats


def _figure(ctx: Context, scored, table, notes: list[str]) -> list:
    import matplotlib

    from thinkscope.analysis.figures import auroc_bars
    from thinkscope.core.figures import STYLE

    with matplotlib.rc_context(STYLE):
        fig = auroc_bars(scored, table)
        if isinstance(fig, str):
            notes.append(f"no AUROC figure: {fig}")
            return []
        return [ctx.figure(fig, "auroc", "AUROC for a correct answer, with 95% bootstrap CIs.")]


def best_baseline(scored, stats: dict[str, Stat]) -> dict[str, Stat]:
    """``auroc.best_baseline``: the highest AUROC among the baseline columns, named;
    ``delong.dtr_vs_best_baseline``: DTR against it on the same samples."""
    aurocs = {
        c: stats.get(f"auroc.{c}") or auroc_stat(scored.traces[c], scored.correct)
        for c in scored.columns
        if is_baseline(scored, c)
    }
    defined = {c: s for c, s in aurocs.items() if s.value is not None}
    if not defined:
        reason = next(iter(aurocs.values())).note if aurocs else "no baseline metric scored"
        return {
            "auroc.best_baseline": Stat.undefined(f"no baseline has an AUROC: {reason}"),
            "delong.dtr_vs_best_baseline": Stat.undefined(f"no best baseline: {reason}"),
        }
    best = max(defined, key=lambda c: defined[c].value)
    top = defined[best]
    note = f"{best}: the highest AUROC of {len(defined)} baselines (metrics that read no layer)"
    column = scored.dtr_column
    return {
        "auroc.best_baseline": Stat(top.value, top.lo, top.hi, top.n, method=top.method, note=note),
        "delong.dtr_vs_best_baseline": delong_stat(
            scored.traces[column], scored.traces[best], scored.correct, best
        ),
    }


def measure(ctx: Context) -> SectionResult:
    import pandas as pd

    from thinkscope.analysis.load import load_scored
    from thinkscope.analysis.table import metric_table

    sizes = ctx.protocol.sizes("predictors")
    rev_path, rev_note = score_rev(ctx, sizes.rev_questions)
    scored = load_scored(ctx.base)
    table = metric_table(scored, resamples=RESAMPLES)
    stats = _stats(scored, {r["metric"]: r for r in _records(table)}, _reported(scored))
    stats.update(best_baseline(scored, stats))
    notes, shown = [rev_note] if rev_note else [], table
    if rev_path is None:
        stats[f"auroc.{REV}"] = Stat.undefined(rev_note)
    else:
        subset = load_scored(rev_path)
        rev_table = metric_table(subset, resamples=RESAMPLES)
        rev_table = rev_table[~rev_table["metric"].isin(scored.columns)]
        stats.update(_stats(subset, {r["metric"]: r for r in _records(rev_table)}, [REV]))
        labelled = rev_table.assign(
            metric=[f"{m} (n={n})" for m, n in rev_table[["metric", "n"]].values]
        )
        shown = pd.concat([table, labelled], ignore_index=True)  # the figure marks REV's subset
        table = pd.concat([table, rev_table], ignore_index=True)
        questions = subset.traces["problem_id"].nunique()
        notes.append(
            f"REV is scored on the first {questions} question{'s' * (questions > 1)} "
            f"({len(subset.traces)} samples; its z-scores are over those): its AUROC, partial r "
            f"and table rows (DeLong p against {scored.dtr_column} included) are on those "
            "samples, and it is not among the baselines of the whole run"
        )
    return SectionResult(
        stats=stats,
        headline=[f"auroc.{scored.dtr_column}", "auroc.best_baseline"],
        tables={"metrics": _records(table)},
        figures=_figure(ctx, scored, shown, notes),
        notes=notes,
    )


def _estimate(protocol) -> float:
    return 10.0 + REV_SECONDS * protocol.sizes("predictors").rev_questions * protocol.run.n


SECTION = Section("predictors", "What predicts correctness", measure, estimate=_estimate)
