"""How samples are drawn: the sampling settings every command that samples shares, declared
once (no torch here: the CLI builds its options from these fields)."""

from __future__ import annotations

from pydantic import Field

from thinkscope.core.spec import Spec


class SamplingSpec(Spec):
    """Samples per problem, their seed, length, scale, truncation, stops and recorded top-k."""

    n: int = Field(4, ge=1, description="Samples per problem.")
    seed: int = Field(0, description="Seed of the problems' order and of every sample's stream.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens generated at most per sample.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass (1: off).")
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens (0: off).")
    min_p: float = Field(0.0, ge=0, lt=1, description="Keep p >= min_p * pmax (0: off).")
    stop: list[str] = Field([], description="Stop string (repeatable).")
    top_logprobs: int = Field(0, ge=0, description="Record the top-k log-probs of every step.")
