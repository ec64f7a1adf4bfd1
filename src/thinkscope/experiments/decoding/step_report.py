"""``thinkscope decoding-report RUN``: the per-step analyses of a ``--log-steps`` run.

Writes into ``RUN/decoding/``: ``low_confidence.csv`` (accuracy by number of steps with
``pmax`` below the threshold), ``off_top.csv`` (accuracy of samples with exactly 0..9 and 10+
tokens not at rank 1), ``mean_rank.csv`` (accuracy by mean-rank bin), ``votes.csv``
(majority vote over all samples against the confident half, per question),
``maj_by_bin.csv`` (maj@k against k for each ``confidence_bin_only`` run given), a
``summary.json`` and ``figures/*.png``, which ``thinkscope report`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from thinkscope.core.atomic import write_json, write_text
from thinkscope.core.errors import UserError
from thinkscope.core.figures import STYLE
from thinkscope.experiments.decoding import figures, step_stats
from thinkscope.runstore.folder import Run
from thinkscope.runstore.sections import add_section

CAPTIONS = {
    "low_confidence.png": "Accuracy by the number of low-confidence steps in a sample.",
    "off_top.png": "Accuracy of samples with exactly k sampled tokens that were not the top-1.",
    "mean_rank.png": "Accuracy by the mean rank of a sample's sampled tokens.",
    "votes.png": "Majority vote over all samples against the most confident half.",
    "maj_by_bin.png": "maj@k against k for runs that sampled only in one confidence bin.",
}


@dataclass
class DecodingReport:
    path: Path
    tables: dict[str, pd.DataFrame]
    summary: dict


def _bin_runs(runs: list[Run]) -> dict[int, pd.DataFrame]:
    out = {}
    for run in runs:
        b = run.config.get("confidence_bin_only")
        if b is None:
            raise UserError(
                f"--bin-run {run.path} was not generated with --confidence-bin-only; "
                "give only runs that sample in one confidence bin"
            )
        if b in out:
            raise UserError(f"two runs sample only confidence bin {b}; give one per bin")
        traces = run.traces()
        n = int(traces.groupby("problem_id").size().min())
        out[int(b)] = step_stats.maj_at_k(traces, list(range(1, n + 1)))
    return out


def decoding_report(
    path: Path | str, bin_runs: list[Path | str] = (), threshold: float = 0.5
) -> DecodingReport:
    """Analyse the per-step logs of the run at ``path`` (see the module docstring)."""
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold must be in (0, 1], got {threshold}")
    run = Run.open(path)
    traces = run.traces()
    step_stats.require_steps(traces, run.path)
    bins = [Run.open(p) for p in bin_runs]
    correct = traces["correct"].to_numpy(dtype=float)
    low = step_stats.low_confidence_counts(traces, threshold)
    tables = {
        "low_confidence": step_stats.accuracy_by_count(low, correct),
        "off_top": step_stats.accuracy_by_count(step_stats.off_top_counts(traces), correct),
        "mean_rank": step_stats.accuracy_by_mean_rank(step_stats.mean_ranks(traces), correct),
        "votes": step_stats.conditioned_vote(traces, low),
    }
    curves = _bin_runs(bins)
    if curves:
        tables["maj_by_bin"] = pd.concat(
            [c.assign(bin=b) for b, c in sorted(curves.items())], ignore_index=True
        )
    out = run.path / "decoding"
    for name, table in tables.items():
        write_text(out / f"{name}.csv", table.to_csv(index=False))
    summary = {
        "threshold": threshold,
        "samples": len(traces),
        "accuracy": float(correct.mean()),
        "mean_low_confidence_steps": float(low.mean()),
        "share_off_top_tokens": float(
            np.concatenate([np.asarray(r) > 1 for r in traces["step_rank"]]).mean()
        ),
        "maj_all": float(tables["votes"]["maj_all"].mean()),
        "maj_confident": float(tables["votes"]["maj_confident"].mean()),
        "bins": sorted(curves),
        "figures": _draw(tables, curves, threshold, out / "figures"),
    }
    write_json(out / "summary.json", summary)
    add_section(
        run.path,
        "decoding",
        "Decoding: confidence and sampled ranks",
        figures=[(out / "figures" / name, CAPTIONS[name]) for name in summary["figures"]],
        tables={
            f"Accuracy by steps with pmax < {threshold:g}": tables["low_confidence"],
            "Accuracy by sampled tokens not at rank 1": tables["off_top"],
            "Accuracy by mean sampled rank": tables["mean_rank"],
        },
        text=(
            f"Majority vote over all samples {summary['maj_all']:.3f}, over the most "
            f"confident half {summary['maj_confident']:.3f}."
        ),
    )
    return DecodingReport(out, tables, summary)


def _draw(tables: dict, curves: dict, threshold: float, out: Path) -> list[str]:
    with matplotlib.rc_context(STYLE):
        return _draw_styled(tables, curves, threshold, out)


def _draw_styled(tables: dict, curves: dict, threshold: float, out: Path) -> list[str]:
    drawn = {
        "low_confidence.png": figures.accuracy_bars(
            tables["low_confidence"],
            "count",
            f"steps with top probability < {threshold:g}",
            "Accuracy vs low-confidence steps",
        ),
        "off_top.png": figures.accuracy_bars(
            tables["off_top"], "count", "sampled tokens not at rank 1", "k-sampled accuracy"
        ),
        "mean_rank.png": figures.accuracy_bars(
            tables["mean_rank"], "mean_rank", "mean rank of sampled tokens", "Accuracy by mean rank"
        ),
        "votes.png": figures.vote_bars(tables["votes"]),
    }
    if curves:
        drawn["maj_by_bin.png"] = figures.maj_by_bin(curves)
    for name, fig in drawn.items():
        figures.save(fig, out / name)
    return list(drawn)
