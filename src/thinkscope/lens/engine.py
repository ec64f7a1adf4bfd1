"""The fused logit-lens engine: per-layer, per-position divergences from the final distribution.

For N positions with block outputs ``h_{t,l}`` (layers 1..L, before the final norm) the lens
distribution is ``p_{t,l} = softmax(head(h_{t,l}))``; ``p_{t,L}`` is the model's own output.
The engine returns ``D_{t,l} = JSD(p_{t,L} || p_{t,l})`` in nats for every layer, plus on
request ``KL(p_{t,L} || p_{t,l})``, the layer entropies and the layer top-K token ids.

How, and what it costs (SmolLM2-135M: L=30, d=576, V=49152, fp32, 2 cores; measured by
``benchmarks/lens.py``, table in the README):

- The work is the ``[rows, d] @ [d, V]`` unembedding products (the floor) plus one fused
  reduction over every ``[rows, V]`` logit block (``kernel.py``: Inductor-compiled C++ on CPU,
  Triton on CUDA). Block sizes come from the device (``blocks.py``): 100 MB of logits per
  block on CPU, a share of the free memory on CUDA. Both steps are one multi-threaded call
  per block, so there are a few parallel regions per block, not thousands.
- ``lens_profile``: a block is all L layers of ``c = rows // L`` positions, layers outer,
  in one product into a reused ``[L*c, V]`` buffer. The final layer's rows give ``p``, its
  log-normaliser and entropy (``kernel.final``); one fused call compares every other layer
  row with its position's ``p``, taking that log-normaliser as its shift. Memory is one
  block whatever N is: it never grows with N x L x V.
- ``settle`` (the DTR-only fast path) goes bottom-up over blocks of positions, ``layer_group``
  layers per product (1 on CPU, about L/4 on GPU), and drops a position once its JSD is <= the
  smallest threshold, so groups above a settled position are never multiplied (SmolLM2,
  g = 0.5 nats, one layer per product: 65 % of the rows are computed).
- Per row: ``sum q log q``, ``sum s log s`` (s = p + q) and, for KL, ``sum p log q``, then
  ``JSD = ln 2 + (sum p log p + sum q log q - sum s log s) / 2`` in fp64, with 0 log 0 = 0
  (a ``-inf`` logit gives a finite JSD). Terms are fp32 and sums fp64 whatever the model's
  dtype (``kernel.py`` says how, and how exact).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from thinkscope.core.errors import UserError
from thinkscope.lens import kernel
from thinkscope.lens.blocks import BlockPlan, memory_budget, plan_blocks
from thinkscope.lens.head import Head, onloaded
from thinkscope.models import LM

LN2 = math.log(2.0)
CONF_K = 20  # DeepConf's top-k

States = Sequence[torch.Tensor] | torch.Tensor  # L tensors [N, d], or [L, N, d]


def ln_base(base: str | float) -> float:
    """``ln(base)``: a divergence in nats divided by this is in ``base`` units (``"e"``, 2, 10)."""
    value = math.e if base in ("e", "E") else float(base)
    if not value > 1:
        raise ValueError(f"log base must be 'e' or a number > 1, got {base!r}")
    return math.log(value)


@dataclass
class FinalStats:
    """Per-position statistics of the model's own distribution ``p_{t,L}``."""

    entropy: torch.Tensor  # [N] nats
    mean_logprob: torch.Tensor  # [N] (1/V) sum_j log p(j): self-certainty = -log V - this
    top_logprobs: torch.Tensor  # [N, k] largest log-probs, descending (DeepConf)
    token_logprob: torch.Tensor | None  # [N] log p(target), when targets are given


@dataclass
class LensProfile:
    """Full profile of N positions over layers 1..L (column L is the final layer)."""

    jsd: torch.Tensor  # [N, L] nats, jsd[:, -1] == 0
    entropy: torch.Tensor | None  # [N, L] nats, H(p_{t,l}) (asked for with entropy= or kl=)
    final: FinalStats
    kl: torch.Tensor | None = None  # [N, L] KL(p_{t,L} || p_{t,l}) nats
    topk_ids: torch.Tensor | None = None  # [N, L, K] each layer's top-K token ids, descending


@dataclass
class Settling:
    """Fast-path result: settling depths (1-indexed) for each threshold."""

    depths: torch.Tensor  # [N, G] int64, column j for thresholds[j] (nats)
    final: FinalStats
    layer_rows: int  # (position, layer) rows actually multiplied, for cost accounting


def _jsd(neg_hp: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """``ln 2 + (sum p log p + gap) / 2`` with ``gap = sum q log q - sum s log s``, clamped to
    [0, ln 2] (fp64)."""
    return (LN2 + 0.5 * (neg_hp + gap)).clamp_(0.0, LN2)


def _check(lm: LM, states: States) -> int:
    """N, after checking that ``states`` are the L block outputs the lens needs."""
    if len(states) == lm.n_layers + 1:
        raise UserError(
            f"got {len(states)} hidden states for a {lm.n_layers}-layer model: these look like "
            "Hugging Face output_hidden_states (embeddings first, the last one already normed); "
            "pass the L block outputs from lm.record_blocks() instead"
        )
    if len(states) != lm.n_layers:
        raise UserError(f"need block outputs of all {lm.n_layers} layers, got {len(states)}")
    return states[0].shape[0]


def _plan(head: Head, n_layers: int, chunk_rows: int | None) -> BlockPlan:
    dev = head.device
    return plan_blocks(
        n_layers, head.vocab, memory_budget(dev), dev.type == "cuda", chunk_rows=chunk_rows
    )


def _stats(z: torch.Tensor, fin: kernel.Final, targets: torch.Tensor | None, k: int) -> FinalStats:
    """The final statistics from logits ``z`` ``[n, V]`` and their :class:`kernel.Final`."""
    lse = fin.lse
    return FinalStats(
        entropy=-fin.neg_h,
        mean_logprob=fin.total / z.shape[-1] - lse,
        top_logprobs=z.topk(k, dim=-1).values - lse[:, None],
        token_logprob=None if targets is None else z.gather(1, targets[:, None]).squeeze(1) - lse,
    )


def _empty_final(n: int, k: int, targets, device) -> FinalStats:
    new = lambda *shape: torch.empty(*shape, device=device)  # noqa: E731
    return FinalStats(new(n), new(n), new(n, k), new(n) if targets is not None else None)


def _store(final: FinalStats, r: slice, part: FinalStats) -> None:
    final.entropy[r], final.mean_logprob[r] = part.entropy, part.mean_logprob
    final.top_logprobs[r] = part.top_logprobs
    if final.token_logprob is not None:
        final.token_logprob[r] = part.token_logprob


def _blocks(n: int, size: int):
    return (slice(t0, min(t0 + size, n)) for t0 in range(0, n, size))


@onloaded
@torch.no_grad()
def lens_profile(
    lm: LM,
    states: States,
    targets: torch.Tensor | None = None,
    kl: bool = False,
    topk: int = 0,
    chunk_rows: int | None = None,
    entropy: bool = False,
) -> LensProfile:
    """Full lens profile of N positions from block outputs ``states`` (L x ``[N, d]``).

    ``targets`` ``[N]`` are the tokens sampled from each position (for their log-probs);
    ``kl`` also returns KL and the layer entropies, ``entropy`` the layer entropies (each costs
    one more fp64 sum per row, so they are off by default); ``topk`` > 0 also returns each
    layer's top-K token ids. ``chunk_rows`` (default: from the device, ``blocks.py``) is the
    rows per product: all L layers of ``chunk_rows // L`` positions.
    """
    n_pos, L = _check(lm, states), lm.n_layers
    head = Head(lm)
    dev, plan = head.device, _plan(head, L, chunk_rows)
    k, c = min(CONF_K, head.vocab), plan.profile_positions
    final = _empty_final(n_pos, k, targets, dev)
    need = "kl" if kl else "entropy" if entropy else "jsd"
    jsd = torch.empty(n_pos, L, device=dev)
    ent = torch.empty(n_pos, L, device=dev) if need != "jsd" else None
    kls = torch.empty(n_pos, L, device=dev) if kl else None
    ids = torch.empty(n_pos, L, topk, dtype=torch.long, device=dev) if topk else None
    targets = targets.to(dev) if targets is not None else None
    buf = torch.empty(min(c, n_pos) * L, head.vocab, device=dev) if n_pos else None
    for r in _blocks(n_pos, c):
        n = r.stop - r.start
        h = torch.cat([states[layer][r].to(dev) for layer in range(L)])  # [L*n, d]
        z = head.finish_(head.raw(h, buf))  # [L*n, V], layers outer
        if ids is not None:
            ids[r] = z.view(L, n, -1).topk(topk, dim=-1).indices.transpose(0, 1)
        below = (L - 1) * n
        z_final = z[below:].clone()  # at offset 0, like settle's: one compiled kernel for both
        fin = kernel.final(z_final)
        owner = torch.arange(n, device=dev).repeat(L - 1)
        sums = kernel.fused(z[:below], fin.p, owner, need=need, shift=fin.lse[owner])
        _store(final, r, _stats(z_final, fin, None if targets is None else targets[r], k))
        jsd[r, : L - 1] = _jsd(fin.neg_h[owner], sums.gap).view(L - 1, n).T
        jsd[r, L - 1] = 0.0  # D_{t,L} = JSD(p || p)
        if ent is not None:
            ent[r, : L - 1] = -sums.neg_hq.view(L - 1, n).T
            ent[r, L - 1] = -fin.neg_h
        if kls is not None:
            kls[r, : L - 1] = (fin.neg_h[owner] - sums.cross).view(L - 1, n).T
            kls[r, L - 1] = 0.0
    return LensProfile(jsd, ent, final, kls, ids)


@onloaded
@torch.no_grad()
def settle(
    lm: LM,
    states: States,
    thresholds: Sequence[float],
    targets: torch.Tensor | None = None,
    chunk_rows: int | None = None,
    layer_group: int | None = None,
) -> Settling:
    """Settling depths for JSD thresholds (nats), computing layers bottom-up only as needed.

    Position t settles for threshold g at the first layer l with ``D_{t,l} <= g``; it leaves
    the computation once settled for the smallest threshold, so no layer group above that is
    ever multiplied. Gives exactly the depths of ``settling_depth(lens_profile(...).jsd, g)``.
    ``chunk_rows`` rows per product and ``layer_group`` layers per product default to the
    device's plan (``blocks.py``).
    """
    n_pos, L = _check(lm, states), lm.n_layers
    head = Head(lm)
    dev, plan = head.device, _plan(head, L, chunk_rows)
    group = layer_group or plan.layer_group
    block = max(1, plan.rows // group) if layer_group else plan.settle_positions
    k = min(CONF_K, head.vocab)
    final = _empty_final(n_pos, k, targets, dev)
    g = torch.tensor(sorted(thresholds), dtype=torch.float32, device=dev)
    depths = torch.full((n_pos, len(g)), L, dtype=torch.long, device=dev)
    targets = targets.to(dev) if targets is not None else None
    buf = torch.empty(min(block, n_pos) * group, head.vocab, device=dev) if n_pos else None
    done = 0
    for r in _blocks(n_pos, block):
        n = r.stop - r.start
        z = head.finish_(head.raw(states[L - 1][r].to(dev), buf))
        fin = kernel.final(z)
        _store(final, r, _stats(z, fin, None if targets is None else targets[r], k))
        active = torch.arange(n if len(g) else 0, device=dev)  # indices into the block
        unset = torch.ones(n, len(g), dtype=torch.bool, device=dev)
        depth = depths[r]  # a view: writes land in depths
        done += n
        for first in range(0, L - 1, group):
            if not len(active):
                break
            layers = range(first, min(first + group, L - 1))
            m = len(active)
            h = torch.stack([states[layer][r].to(dev)[active] for layer in layers])  # [G, m, d]
            z = head.finish_(head.raw(h.flatten(0, 1), buf))  # [G*m, V], layers outer
            owner = active.repeat(len(layers))
            gap = kernel.fused(z, fin.p, owner, need="jsd", shift=fin.lse[owner]).gap
            jsd = _jsd(fin.neg_h[active], gap.view(len(layers), m))
            jsd = jsd.float()  # compared as lens_profile stores it
            for i, layer in enumerate(layers):
                hit = (jsd[i, :, None] <= g) & unset[active]
                depth[active] = torch.where(hit, layer + 1, depth[active])
                unset[active] &= ~hit
            active = active[unset[active, 0]]
            done += len(layers) * m
    order = torch.argsort(torch.argsort(torch.tensor(list(thresholds))))  # the caller's order
    return Settling(depths[:, order.to(dev)], final, done)
