"""Think@n and Self-Certainty@n: score every sample's prefix, finish only the best.

Both generate the first ``prefix`` tokens of all n samples while a :class:`PrefixScore`
watches the block outputs (``BatchSampler.run(on_hidden=...)``), keep the top
``ceil(keep_ratio * n)`` samples of each question, and continue only those from their own
KV cache (``BatchSampler.keep``, then ``run``). Pruned samples are never generated past the
prefix; their prefix tokens are counted. This is real early stopping, not a replay.
"""

from __future__ import annotations

import math
import time

import torch

from thinkscope.lens import ln_base, settle
from thinkscope.metrics.confidence import self_certainty
from thinkscope.metrics.dtr import deep_layer
from thinkscope.metrics.dtr_spec import BASE_DEFAULT, G_DEFAULT, RHO_DEFAULT
from thinkscope.models import LM
from thinkscope.select.pool import Generation, Pool
from thinkscope.select.vote import top_k


class PrefixScore:
    """An ``on_hidden`` callback that averages a per-token score over each row's tokens.

    Subclasses turn the block outputs ``states`` (L tensors ``[N, d]``) into ``[N]`` values
    and add the unembedding FLOPs they ran to ``flops``; ``seconds`` is the wall time spent
    in :meth:`values` (the lens compute the score costs).
    """

    def __init__(self) -> None:
        self._total: dict[int, float] = {}
        self._count: dict[int, int] = {}
        self.seconds = 0.0
        self.flops = 0.0

    def values(self, states: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, rows: list[int], states: list[torch.Tensor]) -> None:
        start = time.perf_counter()
        values = self.values(states).tolist()  # .tolist() waits for the device
        self.seconds += time.perf_counter() - start
        for row, value in zip(rows, values, strict=True):
            self._total[row] = self._total.get(row, 0.0) + value
            self._count[row] = self._count.get(row, 0) + 1

    def score(self, row: int) -> float:
        """Mean per-token value of ``row`` so far (``-inf`` if it has no tokens yet)."""
        count = self._count.get(row, 0)
        return self._total[row] / count if count else -math.inf


def unembed_flops(lm: LM, rows: int) -> float:
    """FLOPs of ``rows`` (position, layer) unembedding products, ``2 d V`` each (the final
    norm, softmax and JSD, ``O(d + V)`` per row, are not counted)."""
    vocab, d = lm.anatomy.unembed.weight.shape
    return 2.0 * d * vocab * rows


class PrefixDTR(PrefixScore):
    """Deep-Thinking Ratio of the prefix (:mod:`thinkscope.metrics.dtr`): the share of tokens
    whose settling depth is ``>= deep_layer(L, rho)``.

    A token settles at the first layer whose logit-lens JSD to the final layer is ``<= g``
    (in log ``base`` units) by the lens's fast path (:func:`thinkscope.lens.settle`), whose
    count of (position, layer) products gives ``flops``.
    ``tie_break``: add ``1e-6 *`` the mean settling depth over L, so samples with equal DTR
    rank by depth (exactly lexicographic while the prefix is under 1,000 tokens).
    """

    TIE = 1e-6

    def __init__(
        self,
        lm: LM,
        g: float = G_DEFAULT,
        rho: float = RHO_DEFAULT,
        base: str | float = BASE_DEFAULT,
        tie_break: bool = False,
    ):
        super().__init__()
        self.lm, self.g, self.base, self.tie_break = lm, g, base, tie_break
        self.deep_from = deep_layer(lm.n_layers, rho)

    def depths(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Settling depths ``[N]`` (1..L) of the positions in ``states``; counts their FLOPs."""
        settled = settle(self.lm, states, [self.g * ln_base(self.base)])
        self.flops += unembed_flops(self.lm, settled.layer_rows)
        return settled.depths[:, 0]

    def values(self, states: list[torch.Tensor]) -> torch.Tensor:
        depths = self.depths(states)
        deep = (depths >= self.deep_from).double()
        return deep + self.TIE * depths.double() / self.lm.n_layers if self.tie_break else deep


class PrefixSettlingDepth(PrefixDTR):
    """Mean settling depth of the prefix (1-indexed layers): the continuous score behind DTR,
    as the ``mean-settling-depth`` metric defines it."""

    def __init__(self, lm: LM, g: float = G_DEFAULT, base: str | float = BASE_DEFAULT):
        super().__init__(lm, g, base=base)

    def values(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.depths(states).double()


class PrefixSelfCertainty(PrefixScore):
    """Self-certainty (:func:`thinkscope.metrics.confidence.self_certainty`) of the model's
    own next-token distribution; higher is more certain."""

    def __init__(self, lm: LM) -> None:
        super().__init__()
        self.lm = lm

    def values(self, states: list[torch.Tensor]) -> torch.Tensor:
        logprobs = torch.log_softmax(self.lm.head(states[-1]).float(), dim=-1)
        self.flops += unembed_flops(self.lm, logprobs.shape[0])
        return self_certainty(logprobs.mean(dim=-1), logprobs.shape[-1])


def kept_count(n: int, keep_ratio: float) -> int:
    """How many of ``n`` samples a keep ratio keeps: ``ceil(keep_ratio * n)``, at least 1."""
    return max(1, math.ceil(keep_ratio * n - 1e-9))


def think_at_n(pool: Pool, score: PrefixScore, prefix: int, keep_ratio: float) -> Generation:
    """Generate ``prefix`` tokens of every sample, keep each question's top ``keep_ratio`` by
    ``score``, finish those from their KV cache; the kept samples vote, one vote each.

    Samples that end inside the prefix are scored like the others (on the tokens they have).
    """
    samples = pool.samples()
    sampler = pool.sampler(samples)
    sampler.run(prefix, on_hidden=score)
    keep = kept_count(pool.n, keep_ratio)
    voters = [
        top_k([score.score(q * pool.n + k) for k in range(pool.n)], keep)
        for q in range(pool.questions)
    ]
    sampler.keep([q * pool.n + k for q, row in enumerate(voters) for k in row])
    sampler.run()
    out = Generation.empty(pool)
    out.add(pool, sampler, samples)
    out.voters, out.weights = voters, [[1.0] * len(row) for row in voters]
    out.scores = [
        [score.score(q * pool.n + k) for k in range(pool.n)] for q in range(pool.questions)
    ]
    out.lens_s, out.lens_flops = score.seconds, score.flops
    return out
