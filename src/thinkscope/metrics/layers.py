"""Metrics over the full layer profile: top-K agreement depth and the mean JSD per layer.

- ``topk-agreement`` (DTR Explorer's diagnostic): per token, the first layer (1-indexed) whose
  top-K token set shares at least ``alpha * K`` tokens with the final top-K; per trace, the mean.
- ``jsd-profile``: per token the JSD of every layer (``jsd_profile``, always nats); per trace
  the mean JSD of each layer, in ``base`` units (a vector: kept in token_metrics.parquet).
"""

from __future__ import annotations

import math

import torch

from thinkscope.lens import ln_base
from thinkscope.metrics.registry import Metric, Needs, Result, TraceLens, register


def agreement_depth(topk_ids: torch.Tensor, k: int = 10, alpha: float = 0.9) -> torch.Tensor:
    """``[T]`` int64: first layer whose top-k ids ``topk_ids[:, l, :k]`` ``[T, L, >=k]`` share
    at least ``ceil(alpha * k)`` ids with the last layer's."""
    ids = topk_ids[..., :k]
    shared = (ids[:, :, :, None] == ids[:, -1, None, None, :]).any(-1).sum(-1)  # [T, L]
    enough = shared >= math.ceil(round(alpha * k, 9))
    return enough.to(torch.uint8).argmax(-1) + 1


def _agreement(view: TraceLens, k: int, alpha: float) -> Result:
    depth = agreement_depth(view.topk_ids, k, alpha)
    value = float(depth.double().mean()) if len(depth) else math.nan
    return Result(value, {"agreement_depth": depth})


def _profile(view: TraceLens, base: str) -> Result:
    jsd = view.jsd
    per_layer = (
        (jsd.double().mean(0) / ln_base(base)).tolist() if len(jsd) else [math.nan] * view.n_layers
    )
    return Result(per_layer, {"jsd_profile": jsd})


register(
    Metric(
        "topk-agreement",
        _agreement,
        lambda k, alpha: Needs(lens=True, full=True, topk=k),
        {"k": 10, "alpha": 0.9},
        {"agreement_depth": ("k", "alpha")},
        doc="mean first layer whose top-K overlaps the final top-K by alpha",
    )
)
register(
    Metric(
        "jsd-profile",
        _profile,
        lambda base: Needs(lens=True, full=True),
        {"base": "e"},
        {"jsd_profile": ()},
        scalar=False,
        doc="mean JSD per layer",
    )
)
