"""REV (seed 001): reasoning effort from activations, attention and ablations.

Per-trace metrics (``thinkscope score RUN --metrics rev``, or one by one):

- ``ae``, ``fl``, ``ape``: reduced in hooks during the scoring forward pass
  (:mod:`thinkscope.metrics.rev.probe`); ``ape`` also writes ``ape_layers`` ``[T, A]`` over
  the A layers that have softmax attention (``Anatomy.attention_layers``).
- ``apl`` (activation path length): share of the layers with a feed-forward part whose
  mean-ablation moves the final-position logits of the whole trace (prompt + completion) by
  more than the control mu + sigma of that layer (:mod:`~thinkscope.metrics.rev.ablation`,
  ``rev_control``).
- ``cud`` (circuit utilisation density): share of the model's circuit heads (heads of its
  attention layers) whose zeroing moves those logits by more than their control mu + sigma.
- ``sib``: prompt-paraphrase stability of the middle block (:mod:`~thinkscope.metrics.rev.sib`).
- ``rev``: per trace, the mean of the z-scores over the run of ``(-ae, ape, -apl, cud, sib,
  -fl)`` (signs: lower activation energy, path length and feature load, and higher attention
  entropy, circuit use and stability count as more effort, as in the seed); NaN components are
  skipped, and a component constant over the run (no z-score) too. ``rev-robust``: the same
  with the median and 1.4826 x the median absolute deviation.

On hybrid stacks ``ape`` and ``cud`` are measured on the attention layers only and ``apl`` on
the layers with a feed-forward part (``scores.json`` records which). A model with no attention
at all (Mamba2) has no ``ape`` or ``cud``, so ``ape``, ``cud``, ``rev`` and ``rev-robust`` are
refused there before any work (:func:`~thinkscope.metrics.registry.check_applicable`): a REV
over fewer components would not be the seed's REV, nor comparable with other models'.

Costs per trace: the in-pass metrics add hooks (and eager attention for ``ape``) to the one
scoring pass; ``apl`` and ``cud`` need ``M + C`` ablated passes of the trace (M feed-forward
parts, C circuit heads, at most 24) plus one clean pass, each ablation at block l computing
blocks l..L-1 only (about (L + 1) / 2 blocks for the MLPs); ``sib`` three short prompt passes
per distinct prompt.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from thinkscope.metrics.registry import GROUPS, Metric, Needs, Result, TraceLens, register
from thinkscope.metrics.rev.ablation import Ablation, logit_shifts, mlp_plan
from thinkscope.metrics.rev.control import controls
from thinkscope.metrics.rev.probe import WindowStats
from thinkscope.metrics.rev.sib import stability
from thinkscope.models import LM

COMPONENTS = ("ae", "ape", "apl", "cud", "sib", "fl")
SIGNS = np.array([-1.0, 1.0, -1.0, 1.0, 1.0, -1.0])
MAD_SCALE = 1.4826


def probe_values(
    lm: LM,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    probes: frozenset[str],
    window: Sequence[WindowStats] | None,
) -> list[dict]:
    """Per trace, the REV values ``probes`` asks for (in-pass ones taken from ``window``)."""
    out: list[dict] = [{} for _ in completions]
    if window is not None:
        for values, stats in zip(out, window, strict=True):
            values.update(ae=stats.ae, fl=stats.fl, ape=stats.ape, ape_layers=stats.ape_layers)
    if probes & {"apl", "cud"}:
        ctl = controls(lm)
        plan: list[Ablation] = mlp_plan(lm) if "apl" in probes else []
        circuit = [Ablation(layer, head) for layer, head in ctl.circuit] if "cud" in probes else []
        n = len(plan)
        seqs = [[*p, *c] for p, c in zip(prompts, completions, strict=True)]
        shifts = logit_shifts(lm, seqs, [*plan, *circuit])  # [N, L + C]
        for values, row in zip(out, shifts, strict=True):
            if "apl" in probes:
                values["apl"] = float(np.mean(row[:n] > ctl.mlp_threshold()))
            if "cud" in probes:
                values["cud"] = float(np.mean(row[n:] > ctl.head_threshold()))
    if "sib" in probes:
        cache: dict[tuple[int, ...], float] = {}
        for values, prompt in zip(out, prompts, strict=True):
            key = tuple(int(t) for t in prompt)
            if key not in cache:
                cache[key] = stability(lm, key)
            values["sib"] = cache[key]
    return out


def zscore_mean(values: np.ndarray, robust: bool = False) -> np.ndarray:
    """``[N]``: per row of ``values`` ``[N, 6]`` (columns :data:`COMPONENTS`), the NaN-skipping
    mean of the signed z-scores of each column over the rows (median/MAD when ``robust``)."""
    x = np.asarray(values, dtype=np.float64) * SIGNS
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: no z-scores
        if robust:
            center = np.nanmedian(x, axis=0)
            scale = MAD_SCALE * np.nanmedian(np.abs(x - center), axis=0)
        else:
            center, scale = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
        z = (x - center) / np.where(scale > 0, scale, np.nan)
        counts = (~np.isnan(z)).sum(axis=1)
        total = np.nansum(z, axis=1)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def _value(name: str):
    def compute(view: TraceLens) -> Result:
        value = view.probes.get(name, math.nan)
        if name == "ape" and view.probes.get("ape_layers") is not None:
            return Result(value, {"ape_layers": view.probes["ape_layers"]})
        return Result(value)

    return compute


def _components(view: TraceLens) -> Result:
    return Result([float(view.probes.get(name, math.nan)) for name in COMPONENTS])


def _calibration(lm: LM) -> dict:
    return controls(lm).record()


DOCS = {
    "ae": "activation energy: mean normalised L2 norm of middle-block window states / T",
    "ape": "attention process entropy: mean attention-row entropy (nats) over window queries",
    "apl": "activation path length: share of layers whose MLP mean-ablation is active",
    "cud": "circuit utilisation density: share of circuit heads whose zeroing is active",
    "fl": "feature load: mean |activation| and share above the median, averaged",
    "sib": "stability of intermediate beliefs: cosine of middle states under paraphrase",
}
#: The parts of the blocks each component reads (``ae``, ``fl``, ``sib``: block outputs only).
REQUIRES = {"ape": ("attention",), "cud": ("attention",), "apl": ("feed-forward",)}
for _name, _doc in DOCS.items():
    register(
        Metric(
            _name,
            _value(_name),
            (lambda n: lambda: Needs(probes=frozenset({n})))(_name),
            arrays={"ape_layers": ()} if _name == "ape" else {},
            doc=_doc,
            in_all=False,
            calibration=_calibration if _name in ("apl", "cud") else None,
            requires=REQUIRES.get(_name, ()),
        )
    )
for _name, _robust in (("rev", False), ("rev-robust", True)):
    register(
        Metric(
            _name,
            _components,
            lambda: Needs(probes=frozenset(COMPONENTS)),
            doc="mean z-score over the run of (-ae, ape, -apl, cud, sib, -fl)"
            + (" (median, 1.4826 MAD)" if _robust else ""),
            in_all=False,
            finalize=(lambda r: lambda values: zscore_mean(values, robust=r))(_robust),
            calibration=_calibration,
            requires=("attention", "feed-forward"),
        )
    )
GROUPS["rev"] = ("ae", "ape", "apl", "cud", "fl", "sib", "rev", "rev-robust")
