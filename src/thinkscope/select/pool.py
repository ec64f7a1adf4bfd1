"""The sample pool every selection method draws from, and what a method generated from it.

A :class:`Pool` fixes, for each of Q questions, the prompt and the seed of each of its n
samples. :class:`~thinkscope.generation.sampler.BatchSampler` draws a sample's tokens from its
own seeded stream, so sample ``(q, k)`` has the same tokens under every method for as long as
that method lets it run: Think@n's kept samples are Cons@n's samples, token for token, and a
pruned sample's tokens are the first tokens of Cons@n's. :func:`pool_mismatches` checks this.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from thinkscope.generation.sampler import BatchSampler, Completion, SamplingParams
from thinkscope.models import LM

Sample = tuple[int, int]  # (question index, sample index)


@dataclass(frozen=True)
class Pool:
    """Q questions with n samples each: prompt ids ``[Q]`` and one seed per sample ``[Q][n]``."""

    lm: LM
    prompts: list[list[int]]
    seeds: list[list[int]]
    params: SamplingParams

    @property
    def questions(self) -> int:
        return len(self.prompts)

    @property
    def n(self) -> int:
        return len(self.seeds[0])

    def samples(self, first: int = 0, stop: int | None = None) -> list[Sample]:
        """Samples ``first..stop-1`` of every question, question-major."""
        stop = self.n if stop is None else stop
        return [(q, k) for q in range(self.questions) for k in range(first, stop)]

    def sampler(self, samples: Sequence[Sample]) -> BatchSampler:
        """A sampler whose row ``i`` is ``samples[i]``."""
        return BatchSampler(
            self.lm,
            [self.prompts[q] for q, _ in samples],
            [self.seeds[q][k] for q, k in samples],
            self.params,
        )

    def prefill_by_question(self, samples: Sequence[Sample]) -> list[int]:
        """Prompt tokens a sampler over ``samples`` prefills, charged to the first question of
        each distinct prompt (the sampler runs each distinct prompt once)."""
        out, seen = [0] * self.questions, set()
        for q, _ in samples:
            key = tuple(self.prompts[q])
            if key not in seen:
                seen.add(key)
                out[q] += len(key)
        return out


@dataclass
class Generation:
    """What one method generated from a pool, and which samples vote.

    ``completions[q][k]`` is ``None`` where the method never sampled ``(q, k)``;
    ``voters[q]`` are the sample indices that vote, with ``weights[q]`` (same order);
    ``scores[q][k]`` is the score the method selected by (NaN where it had none);
    ``lens_s`` and ``lens_flops`` what computing those scores from hidden states cost.
    """

    completions: list[list[Completion | None]]
    voters: list[list[int]]
    weights: list[list[float]]
    prefill_tokens: list[int]
    scores: list[list[float]]
    lens_s: float = 0.0
    lens_flops: float = 0.0

    @classmethod
    def empty(cls, pool: Pool) -> Generation:
        q, n = pool.questions, pool.n
        return cls(
            [[None] * n for _ in range(q)],
            [[] for _ in range(q)],
            [[] for _ in range(q)],
            [0] * q,
            [[math.nan] * n for _ in range(q)],
        )

    def add(self, pool: Pool, sampler: BatchSampler, samples: Sequence[Sample]) -> None:
        """Record what ``sampler`` (rows = ``samples``) generated and the prefill it ran."""
        self.record(samples, sampler.completions, pool.prefill_by_question(samples))

    def record(
        self, samples: Sequence[Sample], completions: Sequence[Completion], prefill: Sequence[int]
    ) -> None:
        """Set the completions of ``samples`` and add ``prefill`` ``[Q]`` prompt tokens."""
        for (q, k), completion in zip(samples, completions, strict=True):
            self.completions[q][k] = completion
        for q, tokens in enumerate(prefill):
            self.prefill_tokens[q] += tokens

    def tokens(self) -> list[int]:
        """Generated tokens per question ``[Q]``: every sampled token, EOS and pruned prefixes
        included."""
        return [sum(len(c.token_ids) for c in row if c is not None) for row in self.completions]


def cons_at_n(pool: Pool) -> Generation:
    """Cons@n: every sample to completion, one vote each."""
    samples = pool.samples()
    sampler = pool.sampler(samples)
    sampler.run()
    out = Generation.empty(pool)
    out.add(pool, sampler, samples)
    out.voters = [list(range(pool.n)) for _ in range(pool.questions)]
    out.weights = [[1.0] * pool.n for _ in range(pool.questions)]
    return out


def pool_mismatches(generation: Generation, reference: Generation) -> list[int]:
    """Per question ``[Q]``: samples whose tokens are not the reference's (not a prefix of
    them, if stopped early). All zeros is the shared-pool property."""
    out = []
    for row, ref_row in zip(generation.completions, reference.completions, strict=True):
        bad = 0
        for mine, ref in zip(row, ref_row, strict=True):
            if mine is None or ref is None:
                continue
            ref_ids = (
                ref.token_ids
                if mine.finish_reason != "pruned"
                else ref.token_ids[: len(mine.token_ids)]
            )
            bad += ref_ids != mine.token_ids
        out.append(bad)
    return out
