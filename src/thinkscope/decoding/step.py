"""One decoding step as a pure function of the logits: the one definition every backend calls.

:func:`decode_step` serves the transformers processor, thinkscope's sampler and the vLLM
processor alike. Ties at the cut: every token whose scaled logit equals the k-th largest is
kept (as transformers' and vLLM's own top-k do), so the kept count can exceed k when logits
tie exactly; the decision never depends on how a sort orders equal values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from thinkscope.decoding.config import DecodingConfig


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
    """Scale ``logits`` ``[B, V]`` and remove tokens as ``config`` says (see DecodingConfig).

    No host synchronisation: every decision stays on the logits' device.
    """
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
    keep = _keep(scaled, probs, pmax, greedy, config)
    if keep is None:
        return DecodingStep(scaled, _full(logits, vocab), pmax, temperature)
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


def _keep(scaled, probs, pmax, greedy, c: DecodingConfig) -> torch.Tensor | None:
    """Kept tokens ``[B, V]`` (None: all). Each set knob keeps the top ``k`` of p, a prefix of
    the sorted order, so the smallest k is the intersection of the knobs' sets; an empty
    intersection keeps the argmax (k at least 1). Cuts are ``>=`` the k-th value: ties stay."""
    rows, vocab = probs.shape
    top = scaled >= scaled.amax(dim=-1, keepdim=True)  # the argmax (with ties)
    bins = (10 * pmax).floor().long().clamp(max=9)  # 0..9; confidence bin b = bins + 1

    def kth_largest(counts: torch.Tensor, bound: int) -> torch.Tensor:
        values = scaled.topk(min(bound, vocab), dim=-1).values  # [B, bound]
        return values.gather(1, (counts.clamp(1, values.shape[1]) - 1).unsqueeze(1))

    def only_top_where(condition: torch.Tensor) -> torch.Tensor:
        return ~condition.unsqueeze(1) | top

    masks = []
    if c.edt_var is not None or c.temperature < 1e-30:  # rows that may be greedy
        masks.append(only_top_where(greedy))
    if c.top_k is not None:
        masks.append(scaled >= kth_largest(_full(scaled, c.top_k), c.top_k))
    if c.dynamic_top_k is not None:
        table = torch.tensor(c.dynamic_top_k, dtype=torch.long, device=probs.device)
        masks.append(scaled >= kth_largest(table[9 - bins], max(c.dynamic_top_k)))
    if c.prob_threshold is not None:
        masks.append(probs >= c.prob_threshold)
    if c.min_p is not None:
        masks.append(probs >= c.min_p * pmax.unsqueeze(1))
    if c.top_p is not None:
        ordered, order = scaled.sort(dim=-1, descending=True)  # p in the same order
        cumulative = probs.gather(1, order).cumsum(dim=-1)
        count = ((cumulative <= c.top_p).sum(dim=-1) + 1).clamp(max=vocab)
        masks.append(scaled >= ordered.gather(1, (count - 1).unsqueeze(1)))
    if c.hewitt_epsilon is not None:
        eps = c.hewitt_epsilon
        cutoff = torch.clamp(math.sqrt(eps) * torch.exp(-entropy(probs)), max=eps)
        masks.append(probs >= cutoff.unsqueeze(1))
    if c.greedy_threshold is not None:
        masks.append(only_top_where(pmax < c.greedy_threshold))
    if c.confidence_bin_only is not None:
        masks.append(only_top_where(bins + 1 != c.confidence_bin_only))
    if c.cal_acc is not None:
        a, b, thr = c.cal_acc
        masks.append(10**a * probs**b >= thr)
    if not masks:
        return None
    keep = functools.reduce(torch.logical_and, masks)
    return keep | (top & ~keep.any(dim=-1, keepdim=True))
