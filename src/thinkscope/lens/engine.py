"""The fused logit-lens engine: per-layer, per-position divergences from the final distribution.

For N positions with block outputs ``h_{t,l}`` (layers 1..L, before the final norm) the lens
distribution is ``p_{t,l} = softmax(head(h_{t,l}))``; ``p_{t,L}`` is the model's own output.
The engine returns ``D_{t,l} = JSD(p_{t,L} || p_{t,l})`` in nats for every layer, plus on
request ``KL(p_{t,L} || p_{t,l})``, the layer entropies (free) and the layer top-K token ids.

How, and what it costs (SmolLM2-135M: L=30, d=576, V=49152, fp32, 2 cores; measured by
``benchmarks/lens.py``, table in its docstring):

- The work is the ``[rows, d] @ [d, V]`` unembedding products (the floor) plus about ten
  elementwise passes over every ``[rows, V]`` logit row. W single-threaded workers
  (W = torch threads; ``parallel.py``) each take every W-th position.
- ``lens_profile``: a chunk is all L layers of ``c = chunk_rows // L`` positions in one
  product into a reused ``[L*c, V]`` buffer (100 MB per worker). It is post-processed in
  sub-blocks of S = 2 positions: their final layer gives ``p`` ``[S, V]``, which then stays in
  L2 cache while the other L - 1 layers of those positions are compared with it. Memory is
  W x (one chunk buffer + four ``[S, V]`` rows) whatever N is: it never grows with N x L x V.
- ``settle`` (the DTR-only fast path) goes layer by layer, bottom-up, over blocks of positions
  and drops a position once its JSD is <= the smallest threshold, so layers above a settled
  position are never multiplied (SmolLM2, g = 0.5 nats: 65 % of the rows are computed).
- Per sub-block: ``sum q log q``, ``sum s log s`` (s = p + q) and optionally ``sum p log q``,
  then ``JSD = ln 2 + (sum p log p + sum q log q - sum s log s) / 2``. ``native.py`` does the
  three sums in one fused C loop when a compiler is there; else eager torch ops with ``out=``
  buffers (log-softmax, exp over the logits, products, log), no ``[rows, V]`` temporaries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from thinkscope.lens import native
from thinkscope.lens.head import Head
from thinkscope.lens.parallel import run_workers
from thinkscope.models import LM

LN2 = math.log(2.0)
CONF_K = 20  # DeepConf's top-k
SUB_BYTES = 1 << 19  # 512 KB sub-blocks (S = 2 rows at V = 49152): z, p, a, t rows fit L2
BLOCK_BYTES = 100 << 20  # per [rows, V] buffer and worker: 533 rows at V = 49152

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
    entropy: torch.Tensor  # [N, L] nats, H(p_{t,l})
    final: FinalStats
    kl: torch.Tensor | None = None  # [N, L] KL(p_{t,L} || p_{t,l}) nats
    topk_ids: torch.Tensor | None = None  # [N, L, K] each layer's top-K token ids, descending


@dataclass
class Settling:
    """Fast-path result: settling depths (1-indexed) for each threshold."""

    depths: torch.Tensor  # [N, G] int64, column j for thresholds[j] (nats)
    final: FinalStats
    layer_rows: int  # (position, layer) rows actually multiplied, for cost accounting


class _Worker:
    """One worker's buffers and the kernels for one sub-block of S rows ``[S, V]``."""

    def __init__(self, head: Head, rows: int, s: int, fast: bool, device: torch.device) -> None:
        self.head, self.s = head, s
        new = lambda n: torch.empty(n, head.vocab, device=device)  # noqa: E731
        self.z = new(rows)  # logits of one chunk
        self.p = new(rows if fast else s)  # final probabilities: the block's, or the sub-block's
        self.a, self.t = new(s), new(s)  # log-probs; products
        self.pg = new(s) if fast else None  # gathered p rows (eager fast path)
        self.native = native.usable(self.z)

    def final(self, zs: torch.Tensor, p: torch.Tensor, stats: dict, r: slice, targets) -> None:
        """Final-layer logits ``zs`` -> probabilities into ``p`` and ``stats[...][r]``."""
        a, t = self.a[: len(zs)], self.t[: len(zs)]
        torch.ops.aten._log_softmax.out(zs, -1, False, out=a)
        torch.exp(a, out=p)
        torch.sum(torch.mul(p, a, out=t), -1, out=stats["neg_h"][r])
        torch.mean(a, -1, out=stats["mean_lp"][r])
        stats["top_lp"][r] = a.topk(stats["top_lp"].shape[1], dim=-1).values
        if targets is not None:
            stats["tok_lp"][r] = a.gather(1, targets[:, None]).squeeze(1)
        p.clamp_(min=torch.finfo(torch.float32).tiny)  # s = p + q > 0 below: log s finite

    def divergence(self, zs, p, neg_hq, sls, cross=None, p_rows=None) -> None:
        """Sums for JSD, entropy and KL of layer logits ``zs`` ``[R, V]`` or ``[layers, R, V]``
        (may be overwritten) against ``p`` ``[R, V]`` (or ``p[p_rows]``): ``neg_hq = sum q log q``,
        ``sls = sum s log s`` (s = p + q), ``cross = sum p log q``, into ``[(layers,) R]``."""
        if self.native:
            native.lens_rows(zs, p, self.t, neg_hq, sls, cross, p_rows)
            return
        if zs.dim() == 3:
            for i, layer in enumerate(zs):
                self.divergence(layer, p, neg_hq[i], sls[i], None if cross is None else cross[i])
            return
        for t0 in range(0, len(zs), self.s):
            r = slice(t0, min(t0 + self.s, len(zs)))
            n = r.stop - t0
            rows = p[r] if p_rows is None else torch.index_select(p, 0, p_rows[r], out=self.pg[:n])
            self._eager(zs[r], rows, neg_hq[r], sls[r], None if cross is None else cross[r])

    def _eager(self, zs, p, neg_hq, sls, cross) -> None:
        """:meth:`divergence` of at most S rows with torch ops into reused buffers."""
        a, t = self.a[: len(zs)], self.t[: len(zs)]
        torch.ops.aten._log_softmax.out(zs, -1, False, out=a)
        q = torch.exp(a, out=zs)
        torch.sum(torch.mul(q, a, out=t), -1, out=neg_hq)
        if cross is not None:
            torch.sum(torch.mul(p, a, out=t), -1, out=cross)
        s = q.add_(p)
        torch.sum(torch.mul(s, torch.log(s, out=a), out=t), -1, out=sls)


def _jsd(neg_hp: torch.Tensor, neg_hq: torch.Tensor, sls: torch.Tensor) -> torch.Tensor:
    """``ln 2 + (sum p log p + sum q log q - sum s log s) / 2``, clamped to [0, ln 2]."""
    return (LN2 + 0.5 * (neg_hp + neg_hq - sls)).clamp_(0.0, LN2)


def _check(lm: LM, states: States) -> int:
    if len(states) != lm.n_layers:
        raise ValueError(f"need block outputs of all {lm.n_layers} layers, got {len(states)}")
    return states[0].shape[0]


def _sizes(head: Head, chunk_rows: int | None) -> tuple[int, int]:
    """Rows per chunk (one ``[rows, V]`` logits buffer) and rows per sub-block."""
    rows = max(1, chunk_rows or BLOCK_BYTES // (4 * head.vocab))
    return rows, max(1, min(rows, SUB_BYTES // (4 * head.vocab)))


def _empty_final(n: int, k: int, targets, device) -> FinalStats:
    new = lambda *shape: torch.empty(*shape, device=device)  # noqa: E731
    return FinalStats(new(n), new(n), new(n, k), new(n) if targets is not None else None)


def _stats(n: int, k: int, device) -> dict[str, torch.Tensor]:
    return {
        "neg_h": torch.empty(n, device=device),
        "mean_lp": torch.empty(n, device=device),
        "top_lp": torch.empty(n, k, device=device),
        "tok_lp": torch.empty(n, device=device),
    }


def _store(final: FinalStats, pos: torch.Tensor, stats: dict) -> None:
    final.entropy[pos], final.mean_logprob[pos] = -stats["neg_h"], stats["mean_lp"]
    final.top_logprobs[pos] = stats["top_lp"]
    if final.token_logprob is not None:
        final.token_logprob[pos] = stats["tok_lp"]


@torch.no_grad()
def lens_profile(
    lm: LM,
    states: States,
    targets: torch.Tensor | None = None,
    kl: bool = False,
    topk: int = 0,
    chunk_rows: int | None = None,
) -> LensProfile:
    """Full lens profile of N positions from block outputs ``states`` (L x ``[N, d]``).

    ``targets`` ``[N]`` are the tokens sampled from each position (for their log-probs);
    ``topk`` > 0 also returns each layer's top-K token ids. ``chunk_rows`` (default: 100 MB of
    logits per worker) is the rows per product: all L layers of ``chunk_rows // L`` positions.
    """
    n_pos, L, dev = _check(lm, states), lm.n_layers, lm.device
    head = Head(lm)
    rows, s = _sizes(head, chunk_rows)
    k, c = min(CONF_K, head.vocab), max(1, rows // L)
    final = _empty_final(n_pos, k, targets, dev)
    jsd, ent = torch.empty(n_pos, L, device=dev), torch.empty(n_pos, L, device=dev)
    kls = torch.empty(n_pos, L, device=dev) if kl else None
    ids = torch.empty(n_pos, L, topk, dtype=torch.long, device=dev) if topk else None

    def task(w: _Worker, pos: torch.Tensor) -> None:
        n = len(pos)
        z = head.raw(torch.stack([states[layer][pos] for layer in range(L)]).flatten(0, 1), w.z)
        z = z.view(L, n, -1)
        stats, neg_hq, sls = (
            _stats(n, k, dev),
            torch.empty(L, n, device=dev),
            torch.empty(L, n, device=dev),
        )
        cross = torch.empty(L, n, device=dev) if kl else None
        top = torch.empty(L, n, topk, dtype=torch.long, device=dev) if topk else None
        for t0 in range(0, n, w.s):
            r = slice(t0, min(t0 + w.s, n))
            p, zs = w.p[: r.stop - t0], head.finish_(z[:, r])  # [S, V], [L, S, V]
            if top is not None:
                top[:, r] = zs.topk(topk, dim=-1).indices
            w.final(zs[L - 1], p, stats, r, targets[pos[r]] if targets is not None else None)
            w.divergence(
                zs[: L - 1],
                p,
                neg_hq[: L - 1, r],
                sls[: L - 1, r],
                cross[: L - 1, r] if cross is not None else None,
            )
        _store(final, pos, stats)
        neg_hp = stats["neg_h"]
        neg_hq[L - 1] = neg_hp
        divergence = _jsd(neg_hp, neg_hq, sls)
        divergence[L - 1] = 0.0  # D_{t,L} = JSD(p || p)
        jsd[pos], ent[pos] = divergence.T, -neg_hq.T
        if kls is not None:
            cross[L - 1] = neg_hp
            kls[pos] = (neg_hp - cross).T
        if ids is not None:
            ids[pos] = top.transpose(0, 1)

    run_workers(n_pos, c, dev, lambda: _Worker(head, c * L, s, False, dev), task)
    return LensProfile(jsd, ent, final, kls, ids)


@torch.no_grad()
def settle(
    lm: LM,
    states: States,
    thresholds: Sequence[float],
    targets: torch.Tensor | None = None,
    chunk_rows: int | None = None,
) -> Settling:
    """Settling depths for JSD thresholds (nats), computing layers bottom-up only as needed.

    Position t settles for threshold g at the first layer l with ``D_{t,l} <= g``; it leaves
    the computation once settled for the smallest threshold, so no layer above that is ever
    multiplied. Gives exactly the depths of ``settling_depth(lens_profile(...).jsd, g)``.
    ``chunk_rows`` positions go through the layers together (default: 100 MB per worker).
    """
    n_pos, L, dev = _check(lm, states), lm.n_layers, lm.device
    head = Head(lm)
    rows, s = _sizes(head, chunk_rows)
    k = min(CONF_K, head.vocab)
    final = _empty_final(n_pos, k, targets, dev)
    g = torch.tensor(sorted(thresholds), dtype=torch.float32, device=dev)
    depths = torch.full((n_pos, len(g)), L, dtype=torch.long, device=dev)
    rows_done = []

    def task(w: _Worker, pos: torch.Tensor) -> None:
        n, stats = len(pos), _stats(len(pos), k, dev)
        z = head.raw(states[L - 1][pos], w.z)
        for t0 in range(0, n, w.s):
            r = slice(t0, min(t0 + w.s, n))
            w.final(
                head.finish_(z[r]),
                w.p[r],
                stats,
                r,
                targets[pos[r]] if targets is not None else None,
            )
        _store(final, pos, stats)
        active = torch.arange(n if len(g) else 0, device=dev)  # indices into pos
        unset = torch.ones(n, len(g), dtype=torch.bool, device=dev)
        done = n
        for layer in range(L - 1):
            if not len(active):
                break
            m = len(active)
            z = head.raw(states[layer][pos[active]], w.z)
            neg_hq, sls = torch.empty(m, device=dev), torch.empty(m, device=dev)
            w.divergence(head.finish_(z), w.p, neg_hq, sls, p_rows=active)
            jsd = _jsd(stats["neg_h"][active], neg_hq, sls)
            hit = (jsd[:, None] <= g) & unset[active]
            depths[pos[active]] = torch.where(hit, layer + 1, depths[pos[active]])
            unset[active] &= ~hit
            active = active[jsd > g[0]]
            done += m
        rows_done.append(done)

    run_workers(n_pos, rows, dev, lambda: _Worker(head, rows, s, True, dev), task)
    order = torch.argsort(torch.argsort(torch.tensor(list(thresholds))))  # the caller's order
    return Settling(depths[:, order.to(dev)], final, sum(rows_done))
