"""The decoding options as one reusable block for any Typer command that samples.

``@decoding_options`` under ``@app.command()`` adds ``--greedy-threshold`` ... ``--log-steps``
to a command; the command receives them parsed as one keyword, ``decoding: dict``, holding
:class:`~thinkscope.generation.pipeline.GenerateConfig` field values to pass on
(``GenerateConfig.parse(..., **decoding)``). Commands that copy another command's signature
(``traces`` copies ``generate``) inherit the block.
"""

from __future__ import annotations

from pathlib import Path

from thinkscope.cli.options import option_block
from thinkscope.core.errors import UserError
from thinkscope.decoding.config import cal_acc_from_file

_OPTIONS = {  # name: (annotation, default, help)
    "greedy_threshold": (float, None, "Greedy at steps whose top probability < tau."),
    "prob_threshold": (float, None, "Epsilon sampling: keep tokens with p >= eps."),
    "dynamic_top_k": (
        str,
        None,
        "Ten comma-separated k, one per confidence bin (first: pmax >= 0.9).",
    ),
    "edt_var": (str, None, "N,theta,T0: entropy-dependent T = T0 * N^(theta/H)."),
    "hewitt_epsilon": (float, None, "Eta sampling: keep p >= min(eps, sqrt(eps) exp(-H))."),
    "confidence_bin_only": (
        int,
        None,
        "Sample only in confidence bin b (1..10), greedy elsewhere.",
    ),
    "cal_acc": (str, None, "A,B,thr: keep tokens with 10^A p^B >= thr."),
    "cal_acc_from": (
        Path,
        None,
        "calibration.json from `thinkscope calibrate`: A and B for --cal-acc.",
    ),
    "cal_acc_threshold": (float, None, "thr for --cal-acc-from."),
    "log_steps": (bool, False, "Record pmax, rank, probability and kept count of every step."),
}


def parse_decoding_options(
    greedy_threshold: float | None = None,
    prob_threshold: float | None = None,
    dynamic_top_k: str | None = None,
    edt_var: str | None = None,
    hewitt_epsilon: float | None = None,
    confidence_bin_only: int | None = None,
    cal_acc: str | None = None,
    cal_acc_from: Path | None = None,
    cal_acc_threshold: float | None = None,
    log_steps: bool = False,
) -> dict:
    """The options' strings as GenerateConfig values (ranges are checked there)."""
    if cal_acc_from is not None and cal_acc is not None:
        raise UserError("give --cal-acc or --cal-acc-from, not both")
    if (cal_acc_from is None) != (cal_acc_threshold is None):
        raise UserError("--cal-acc-from and --cal-acc-threshold go together")
    values = dict(
        greedy_threshold=greedy_threshold,
        prob_threshold=prob_threshold,
        dynamic_top_k=_numbers("--dynamic-top-k", dynamic_top_k, int),
        edt_var=_numbers("--edt-var", edt_var, float),
        hewitt_epsilon=hewitt_epsilon,
        confidence_bin_only=confidence_bin_only,
        cal_acc=_numbers("--cal-acc", cal_acc, float),
        log_steps=log_steps,
    )
    if cal_acc_from is not None:
        values["cal_acc"] = cal_acc_from_file(cal_acc_from, cal_acc_threshold)
    return values


decoding_options = option_block(_OPTIONS, "decoding", "Decoding", parse_decoding_options)
"""``command`` with the decoding options added; it gets them as ``decoding=dict(...)``."""


def _numbers(option: str, text: str | None, kind: type) -> list | None:
    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"{option} takes comma-separated {kind.__name__}s, got {text!r}") from None
