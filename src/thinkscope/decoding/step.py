"""One decoding step as a pure function of the logits: the one definition every backend calls.

:func:`decode_step` serves the transformers processor, thinkscope's sampler and the vLLM
processor alike. Ties at the cut: every token whose scaled logit equals the k-th largest is
kept (as transformers' and vLLM's own top-k do), so the kept count can exceed k when logits
tie exactly; the decision never depends on how a sort orders equal values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from thinkscope.decoding.config import DecodingConfig

NEEDS_COUNT = (
    "top_k",
    "top_p",
    "min_p",
    "greedy_threshold",
    "prob_threshold",
    "dynamic_top_k",
    "hewitt_epsilon",
    "confidence_bin_only",
    "cal_acc",
)


@dataclass(frozen=True)
class DecodingStep:
    """What one step decided, per row: ``scores`` ``[B, V]`` (the scaled logits, removed
    tokens at ``-inf``), ``kept`` ``[B]`` (tokens kept), ``pmax`` ``[B]`` (max of
    ``p = softmax(z / T)``), ``temperature`` ``[B]`` (the T each row was scaled by)."""

    scores: torch.Tensor
    kept: torch.Tensor
    pmax: torch.Tensor
    temperature: torch.Tensor


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of ``probs`` ``[B, V]`` -> ``[B]`` (``0 log 0 = 0``)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def decode_step(logits: torch.Tensor, config: DecodingConfig) -> DecodingStep:
    """Scale ``logits`` ``[B, V]`` and remove tokens as ``config`` says (see DecodingConfig)."""
    rows, vocab = logits.shape
    if config.identity:
        pmax = torch.softmax(logits.double(), dim=-1).amax(dim=-1)
        return DecodingStep(logits, _full(logits, vocab), pmax, _full(logits, 1.0, torch.float64))
    temperature = _temperature(logits, config)
    scaled = torch.where(  # -inf / inf would be NaN
        torch.isfinite(logits), logits / temperature.to(logits.dtype).unsqueeze(1), logits
    )
    greedy = (temperature == 0) | (scaled == math.inf).any(dim=-1)  # T = 0 or z / T overflows
    scaled = torch.where(greedy.unsqueeze(1), logits, scaled)
    probs = torch.softmax(scaled.double(), dim=-1)  # float64: counts and cumsums stay exact
    pmax = probs.amax(dim=-1)
    k = torch.where(greedy, 1, vocab)
    knobs = {name: getattr(config, name) for name in NEEDS_COUNT}
    if any(v is not None for v in knobs.values()):
        k = torch.minimum(k, _count(probs, pmax, config))
    if bool((k >= vocab).all()):
        return DecodingStep(scaled, _full(logits, vocab), pmax, temperature)
    ordered = scaled.sort(dim=-1, descending=True).values
    cut = ordered.gather(1, (k.clamp(1, vocab) - 1).unsqueeze(1))
    keep = scaled >= cut
    scores = scaled.masked_fill(~keep, -math.inf)
    return DecodingStep(scores, keep.sum(dim=-1), pmax, temperature)


def _full(like: torch.Tensor, value, dtype=torch.long) -> torch.Tensor:
    return torch.full((like.shape[0],), value, dtype=dtype, device=like.device)


def _temperature(logits: torch.Tensor, config: DecodingConfig) -> torch.Tensor:
    """``[B]`` float64: ``temperature``, or EDT's ``T0 * N ** (theta / H)`` per row."""
    if config.edt_var is None:
        return _full(logits, float(config.temperature), torch.float64)
    n, theta, t0 = config.edt_var
    h = entropy(torch.softmax(logits.double(), dim=-1))
    exponent = theta / h if theta else torch.zeros_like(h)  # theta = 0: T = T0 even at H = 0
    return t0 * torch.pow(torch.tensor(n, dtype=torch.float64, device=h.device), exponent)


def _count(probs: torch.Tensor, pmax: torch.Tensor, c: DecodingConfig) -> torch.Tensor:
    """The smallest count any set knob allows, ``[B]`` long (not yet clamped to >= 1)."""
    rows, vocab = probs.shape
    k = torch.full((rows,), vocab, dtype=torch.long, device=probs.device)
    bins = (10 * pmax).floor().long().clamp(max=9)  # 0..9; bin b = bins + 1

    def at_least(mask: torch.Tensor) -> torch.Tensor:
        return mask.sum(dim=-1)

    def where_one(condition: torch.Tensor) -> torch.Tensor:
        return torch.where(condition, 1, vocab)

    if c.top_k is not None:
        k = k.clamp(max=c.top_k)
    if c.dynamic_top_k is not None:
        table = torch.tensor(c.dynamic_top_k, dtype=torch.long, device=probs.device)
        k = torch.minimum(k, table[9 - bins])
    if c.prob_threshold is not None:
        k = torch.minimum(k, at_least(probs >= c.prob_threshold))
    if c.min_p is not None:
        k = torch.minimum(k, at_least(probs >= c.min_p * pmax.unsqueeze(1)))
    if c.top_p is not None:
        cumulative = probs.sort(dim=-1, descending=True).values.cumsum(dim=-1)
        k = torch.minimum(k, at_least(cumulative <= c.top_p) + 1)
    if c.hewitt_epsilon is not None:
        eps = c.hewitt_epsilon
        cutoff = torch.clamp(math.sqrt(eps) * torch.exp(-entropy(probs)), max=eps)
        k = torch.minimum(k, at_least(probs >= cutoff.unsqueeze(1)))
    if c.greedy_threshold is not None:
        k = torch.minimum(k, where_one(pmax < c.greedy_threshold))
    if c.confidence_bin_only is not None:
        k = torch.minimum(k, where_one(bins + 1 != c.confidence_bin_only))
    if c.cal_acc is not None:
        a, b, thr = c.cal_acc
        k = torch.minimum(k, at_least(10**a * probs**b >= thr))
    return k
