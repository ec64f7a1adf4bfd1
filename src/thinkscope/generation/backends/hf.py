"""The ``hf`` backend: thinkscope's own :class:`~thinkscope.generation.sampler.BatchSampler`."""

from __future__ import annotations

from collections.abc import Sequence

from thinkscope.generation.sampler import BatchSampler, SamplingParams
from thinkscope.models import LM


class HFBackend:
    """Batched sampling with per-sample seeded streams on any torch device."""

    name = "hf"

    def __init__(self, lm: LM) -> None:
        self.lm = lm

    @property
    def tokenizer(self):
        return self.lm.tokenizer

    def complete(
        self, prompts: Sequence[Sequence[int]], seeds: Sequence[int], params: SamplingParams
    ) -> BatchSampler:
        """Sample one completion per prompt; the finished sampler holds ``completions``."""
        sampler = BatchSampler(self.lm, prompts, seeds, params)
        sampler.run()
        return sampler
