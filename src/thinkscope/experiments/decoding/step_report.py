"""``thinkscope decoding-report RUN``: the per-step analyses of a ``--log-steps`` run.

Writes into ``RUN/decoding/``: ``low_confidence.csv`` (accuracy by number of steps with
``pmax`` below the threshold), ``off_top.csv`` (accuracy of samples with exactly 0..9 and 10+
tokens not at rank 1), ``mean_rank.csv`` (accuracy by mean-rank bin), ``votes.csv``
(majority vote over all samples against the confident half, per question),
``maj_by_bin.csv`` (maj@k against k for each ``confidence_bin_only`` run given), a
``summary.json`` and ``figures/*.png`` (and ``*.pdf`` with ``pdf=True``), which ``thinkscope
report`` shows.

:func:`samples_report` makes the same report from an lm-eval samples file and its rank log
(:mod:`thinkscope.lmeval.steps`) instead of a run: a doc is a question answered once. A rank
log in seed 003's shape (a list of ranks per response, the steps below the threshold it was
written with) stands for both: a response's low-confidence count is its list's length, and the
rank analyses use the ranks listed, as the seed's ``merge_low_conf_ranks_seq.py`` does.
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
from thinkscope.lmeval.steps import rank_log_beside, read_rank_log, read_samples
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
    path: Path | str,
    bin_runs: list[Path | str] = (),
    threshold: float = 0.5,
    pdf: bool = False,
) -> DecodingReport:
    """Analyse the per-step logs of the run at ``path`` (see the module docstring)."""
    _check_threshold(threshold)
    run = Run.open(path)
    traces = run.traces()
    step_stats.require_steps(traces, run.path)
    bins = [Run.open(p) for p in bin_runs]
    low = step_stats.low_confidence_counts(traces, threshold)
    report = _analyse(traces, low, threshold, _bin_runs(bins), run.path / "decoding", pdf)
    add_section(
        run.path,
        "decoding",
        "Decoding: confidence and sampled ranks",
        figures=[
            (report.path / "figures" / name, CAPTIONS[name]) for name in report.summary["figures"]
        ],
        tables={
            f"Accuracy by steps with pmax < {threshold:g}": report.tables["low_confidence"],
            "Accuracy by sampled tokens not at rank 1": report.tables["off_top"],
            "Accuracy by mean sampled rank": report.tables["mean_rank"],
        },
        text=(
            f"Majority vote over all samples {report.summary['maj_all']:.3f}, over the most "
            f"confident half {report.summary['maj_confident']:.3f}."
        ),
    )
    return report


def samples_report(
    samples: Path | str,
    ranks: Path | str | None = None,
    threshold: float | None = None,
    filter_name: str | None = None,
    out: Path | str | None = None,
    pdf: bool = False,
) -> DecodingReport:
    """The report of an lm-eval samples file and its rank log (default: the ``steps_*.jsonl``
    beside it) in ``out`` (default: ``decoding_<task>_<date>/`` beside the samples file)."""
    samples = Path(samples)
    if threshold is not None:
        _check_threshold(threshold)
    answers = read_samples(samples, filter_name)
    ranks = Path(ranks) if ranks else rank_log_beside(samples)
    if not ranks.is_file():
        raise UserError(f"no rank log {ranks} beside --samples {samples}; give --ranks FILE")
    traces = read_rank_log(ranks, answers)
    if "step_pmax" in traces:
        threshold = 0.5 if threshold is None else threshold
        low = step_stats.low_confidence_counts(traces, threshold)
    elif threshold is not None:
        raise UserError(
            f"--threshold: --ranks {ranks} lists only the ranks below the threshold it was "
            "written with; drop --threshold"
        )
    else:
        low = traces["step_rank"].map(len).to_numpy()
    if not traces["step_rank"].map(len).sum():
        raise UserError(f"--ranks {ranks} logs no steps")
    name = samples.stem.removeprefix("samples_")
    out = Path(out) if out else samples.parent / f"decoding_{name}"
    return _analyse(traces, low, threshold, {}, out, pdf)


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold must be in (0, 1], got {threshold}")


def _analyse(
    traces: pd.DataFrame,
    low: np.ndarray,
    threshold: float | None,
    curves: dict[int, pd.DataFrame],
    out: Path,
    pdf: bool,
) -> DecodingReport:
    """Tables, figures and ``summary.json`` in ``out`` from ``traces`` (``problem_id``,
    ``pred``, ``correct``, ``step_rank``) and each sample's low-confidence count ``low``."""
    correct = traces["correct"].to_numpy(dtype=float)
    tables = {
        "low_confidence": step_stats.accuracy_by_count(low, correct),
        "off_top": step_stats.accuracy_by_count(step_stats.off_top_counts(traces), correct),
        "mean_rank": step_stats.accuracy_by_mean_rank(step_stats.mean_ranks(traces), correct),
        "votes": step_stats.conditioned_vote(traces, low),
    }
    if curves:
        tables["maj_by_bin"] = pd.concat(
            [c.assign(bin=b) for b, c in sorted(curves.items())], ignore_index=True
        )
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
        "figures": _draw(tables, curves, threshold, out / "figures", pdf),
    }
    write_json(out / "summary.json", summary)
    return DecodingReport(out, tables, summary)


def _draw(tables: dict, curves: dict, threshold: float | None, out: Path, pdf: bool) -> list[str]:
    with matplotlib.rc_context(STYLE):
        return _draw_styled(tables, curves, threshold, out, pdf)


def _draw_styled(
    tables: dict, curves: dict, threshold: float | None, out: Path, pdf: bool
) -> list[str]:
    below = "in the rank log" if threshold is None else f"with top probability < {threshold:g}"
    drawn = {
        "low_confidence.png": figures.accuracy_bars(
            tables["low_confidence"],
            "count",
            f"steps {below}",
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
        figures.save(fig, out / name, pdf)
    return list(drawn)
