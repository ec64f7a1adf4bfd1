"""Think@n and Self-Certainty@n: score every sample's prefix, finish only the best.

Both generate the first ``prefix`` tokens of all n samples while a :class:`PrefixScore`
watches the block outputs (``BatchSampler.run(on_hidden=...)``), keep the top
``ceil(keep_ratio * n)`` samples of each question, and continue only those from their own
KV cache (``BatchSampler.keep``, then ``run``). Pruned samples are never generated past the
prefix; their prefix tokens are counted. This is real early stopping, not a replay.
"""

from __future__ import annotations

import math

import torch

from thinkscope.lens import settling_depths_from_states
from thinkscope.models import LM
from thinkscope.select.pool import Generation, Pool
from thinkscope.select.vote import top_k


class PrefixScore:
    """An ``on_hidden`` callback that averages a per-token score over each row's tokens.

    Subclasses turn the block outputs ``states`` (L tensors ``[N, d]``) into ``[N]`` values.
    """

    def __init__(self) -> None:
        self._total: dict[int, float] = {}
        self._count: dict[int, int] = {}

    def values(self, states: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, rows: list[int], states: list[torch.Tensor]) -> None:
        for row, value in zip(rows, self.values(states).tolist(), strict=True):
            self._total[row] = self._total.get(row, 0.0) + value
            self._count[row] = self._count.get(row, 0) + 1

    def score(self, row: int) -> float:
        """Mean per-token value of ``row`` so far (``-inf`` if it has no tokens yet)."""
        count = self._count.get(row, 0)
        return self._total[row] / count if count else -math.inf


class PrefixDTR(PrefixScore):
    """Deep-Thinking Ratio: the share of tokens whose settling depth is ``>= ceil(rho * L)``.

    A token settles at the first layer whose logit-lens JSD to the final layer is ``<= g``
    (in log ``base`` units; :func:`thinkscope.lens.settling_depths_from_states`).
    """

    def __init__(self, lm: LM, g: float = 0.5, rho: float = 0.85, base: str | float = "e"):
        super().__init__()
        self.lm, self.g, self.base = lm, g, base
        self.deep_from = math.ceil(rho * lm.n_layers)

    def values(self, states: list[torch.Tensor]) -> torch.Tensor:
        depths = settling_depths_from_states(self.lm, states, self.g, base=self.base)
        return (depths >= self.deep_from).float()


class PrefixSelfCertainty(PrefixScore):
    """Self-certainty: ``KL(uniform || p)`` of the model's own next-token distribution,
    ``-log V - mean_j log p_j`` (Kang et al. 2025); higher is more certain."""

    def __init__(self, lm: LM) -> None:
        super().__init__()
        self.lm = lm

    def values(self, states: list[torch.Tensor]) -> torch.Tensor:
        logprobs = torch.log_softmax(self.lm.head(states[-1]).float(), dim=-1)
        return -logprobs.mean(dim=-1) - math.log(logprobs.shape[-1])


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
    voters = [top_k([score.score(q * pool.n + k) for k in range(pool.n)], keep)
              for q in range(pool.questions)]
    sampler.keep([q * pool.n + k for q, row in enumerate(voters) for k in row])
    sampler.run()
    out = Generation.empty(pool)
    out.add(pool, sampler, samples)
    out.voters, out.weights = voters, [[1.0] * len(row) for row in voters]
    out.scores = [[score.score(q * pool.n + k) for k in range(pool.n)]
                  for q in range(pool.questions)]
    return out

