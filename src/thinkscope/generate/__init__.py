"""Sampling: batched n-sample generation with per-token records."""

from thinkscope.generate.sampler import BatchSampler, Completion, SamplingParams

__all__ = ["BatchSampler", "Completion", "SamplingParams"]
