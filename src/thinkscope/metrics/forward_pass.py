"""Score a batch of traces: one forward pass, one lens pass, then every requested metric."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thinkscope.lens import lens_profile, sampled_states, settle
from thinkscope.lens.engine import FinalStats
from thinkscope.metrics.registry import MetricSpec, Needs, Result, TraceLens, check_applicable
from thinkscope.metrics.rev import probe_values
from thinkscope.metrics.rev.probe import IN_PASS, window_probe
from thinkscope.models import LM


def needs_of(specs: Sequence[MetricSpec]) -> Needs:
    needs = Needs()
    for spec in specs:
        needs = needs | spec.needs()
    return needs


def _slice(final: FinalStats, rows: slice) -> FinalStats:
    lp = final.token_logprob
    return FinalStats(
        final.entropy[rows],
        final.mean_logprob[rows],
        final.top_logprobs[rows],
        lp[rows] if lp is not None else None,
    )


def lens_views(
    lm: LM,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    needs: Needs,
    chunk_rows: int | None = None,
) -> list[TraceLens]:
    """Per-trace lens results for ``needs``: full profile, fast-path depths, or final layer only."""
    lengths = [len(c) for c in completions]
    base = dict(n_layers=lm.n_layers, vocab=lm.vocab_size)
    in_pass = needs.probes & IN_PASS
    if needs.lens or in_pass:  # REV's in-pass metrics are reduced in hooks on the same pass
        with window_probe(lm, completions, in_pass) as window:
            states, targets = sampled_states(lm, prompts, completions)
    probes = (
        probe_values(lm, prompts, completions, needs.probes, window if in_pass else None)
        if needs.probes
        else [{} for _ in lengths]
    )
    if not needs.lens:
        return [
            TraceLens(n_tokens=n, final=None, probes=p, **base)
            for n, p in zip(lengths, probes, strict=True)
        ]
    thresholds = sorted(needs.thresholds)
    jsd = topk = None
    depths: dict[float, torch.Tensor] = {}
    if needs.full:
        profile = lens_profile(lm, states, targets=targets, topk=needs.topk, chunk_rows=chunk_rows)
        jsd, topk, final = profile.jsd.cpu(), profile.topk_ids, profile.final
    else:
        settled = settle(lm, states, thresholds, targets=targets, chunk_rows=chunk_rows)
        depths = dict(zip(thresholds, settled.depths.cpu().T, strict=True))
        final = settled.final
    final = FinalStats(*(t.cpu() if t is not None else None for t in vars(final).values()))
    views, start = [], 0
    for n, found in zip(lengths, probes, strict=True):
        rows = slice(start, start + n)
        views.append(
            TraceLens(
                n_tokens=n,
                final=_slice(final, rows),
                jsd=jsd[rows] if jsd is not None else None,
                depths={g: d[rows] for g, d in depths.items()},
                topk_ids=topk[rows].cpu() if topk is not None else None,
                probes=found,
                **base,
            )
        )
        start += n
    return views


def measure(
    lm: LM,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    specs: Sequence[MetricSpec],
    chunk_rows: int | None = None,
) -> list[dict[str, Result]]:
    """For each trace, ``{column: Result}`` for every spec (one forward and one lens pass);
    a spec that needs a part ``lm`` lacks (``ape`` on Mamba2) is refused first."""
    check_applicable(lm, specs)
    views = lens_views(lm, prompts, completions, needs_of(specs), chunk_rows)
    return [{spec.column: spec.compute(view) for spec in specs} for view in views]
