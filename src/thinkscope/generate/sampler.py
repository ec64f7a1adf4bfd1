"""Batched sampling with a KV cache, one random stream per sample, and per-token records.

Each row draws one uniform number per step from its own seeded generator and samples by
inverse CDF, so a sample's tokens depend on its seed and its prompt, not on which other
rows share the batch: a resumed run or a pruned pool reproduces the same samples. Finished
rows leave the batch (their cache rows are dropped), and identical prompts are prefilled once.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, LogitsProcessorList
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from thinkscope.errors import UserError
from thinkscope.models import LM

HiddenCallback = Callable[[list[int], list[torch.Tensor]], None]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` is greedy; ``top_logprobs`` > 0 records top-k."""

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or not 0 <= self.min_p < 1:
            raise UserError("need temperature >= 0, 0 < top_p <= 1 and 0 <= min_p < 1")
        if self.max_new_tokens < 1 or self.top_k < 0 or self.top_logprobs < 0:
            raise UserError("need max_new_tokens >= 1, top_k >= 0 and top_logprobs >= 0")

    def warpers(self) -> LogitsProcessorList:
        """transformers' own warpers, in the order ``generate`` applies them."""
        out = LogitsProcessorList()
        if self.temperature > 0 and self.temperature != 1.0:
            out.append(TemperatureLogitsWarper(self.temperature))
        if self.top_k > 0:
            out.append(TopKLogitsWarper(self.top_k))
        if self.top_p < 1.0:
            out.append(TopPLogitsWarper(self.top_p))
        if self.min_p > 0:
            out.append(MinPLogitsWarper(self.min_p))
        return out


@dataclass
class Completion:
    """What one sample generated.

    ``logprobs`` are under the model's own distribution (before temperature and truncation);
    ``finish_reason`` is ``stop`` (EOS or stop string), ``length``, or ``pruned`` (dropped by
    :meth:`BatchSampler.keep`).
    """

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_ids: list[list[int]] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)
    finish_reason: str | None = None


class BatchSampler:
    """Decode ``prompts`` step by step; ``run`` can be called again after ``keep`` to continue."""

    def __init__(
        self,
        lm: LM,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int],
        params: SamplingParams,
        processors: Sequence = (),
    ) -> None:
        if len(prompts) != len(seeds) or not prompts:
            raise ValueError("need one seed per prompt and at least one prompt")
        self.lm, self.params = lm, params
        self.processors = LogitsProcessorList([*processors, *params.warpers()])
        self.completions = [Completion() for _ in prompts]
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.eos = torch.tensor(sorted(lm.eos_token_ids), dtype=torch.long)
        self.prefill_tokens = 0
        self._prompts = [list(p) for p in prompts]
        self._active = list(range(len(prompts)))  # original row of each batch row
        self._cache: DynamicCache | None = None
        self._max_stop = max((len(s) for s in params.stop), default=0)
        forward_args = inspect.signature(lm.model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"

    @property
    def finished(self) -> bool:
        return not self._active

    @property
    def generated_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.completions)

    @torch.no_grad()
    def run(
        self, max_new_tokens: int | None = None, on_hidden: HiddenCallback | None = None
    ) -> None:
        """Decode until every row stops or holds ``max_new_tokens`` tokens (default: the params').

        ``on_hidden(rows, states)`` receives, before each token is sampled, the original row
        indices and the block outputs ``[len(rows), d]`` (layers 1..L) that the token is
        sampled from.
        """
        limit = min(max_new_tokens or self.params.max_new_tokens, self.params.max_new_tokens)
        while self._active:
            steps = len(self.completions[self._active[0]].token_ids)
            if steps >= limit:
                break
            logits, states = self._forward(on_hidden is not None)
            if on_hidden is not None:
                on_hidden(list(self._active), [s[:, -1] for s in states])
            self._append(self._sample(logits[:, -1].float()))

    def keep(self, rows: Sequence[int]) -> None:
        """Stop every row not in ``rows`` (original indices) where it is; free its cache."""
        wanted = set(rows)
        for row in self._active:
            if row not in wanted:
                self.completions[row].finish_reason = "pruned"
        self._select([i for i, row in enumerate(self._active) if row in wanted])

    # -- internals ---------------------------------------------------------------------
    def _forward(self, record: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model, device = self.lm.model, self.lm.device
        if self._cache is None:
            return self._prefill(record)
        last = [self.completions[row].token_ids[-1] for row in self._active]
        ids = torch.tensor(last, device=device).unsqueeze(1)
        self._mask = torch.cat([self._mask, torch.ones_like(ids)], dim=1)
        positions = self._positions[:, -1:] + 1
        self._positions = positions
        with self.lm.record_blocks() if record else nullcontext() as states:
            logits = model(
                input_ids=ids,
                attention_mask=self._mask,
                position_ids=positions,
                use_cache=True,
                **{self._cache_arg: self._cache},
            ).logits
        self._input_ids = torch.cat([self._input_ids, ids], dim=1)
        return logits, states or []

    def _prefill(self, record: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Prefill each distinct prompt once, then copy its cache row to every sample of it."""
        device, pad = self.lm.device, self.lm.tokenizer.pad_token_id
        unique = list(dict.fromkeys(tuple(p) for p in self._prompts))
        index = torch.tensor([unique.index(tuple(p)) for p in self._prompts], device=device)
        width = max(len(p) for p in unique)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in unique], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in unique], device=device)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        self._cache = DynamicCache(config=self.lm.model.config)
        with self.lm.record_blocks() if record else nullcontext() as states:
            logits = self.lm.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{self._cache_arg: self._cache},
            ).logits[:, -1:]
        self.prefill_tokens = sum(len(p) for p in unique)
        self._cache.batch_select_indices(index)
        self._mask, self._positions, self._input_ids = mask[index], positions[index], ids[index]
        return logits[index], [s[index] for s in states or []]

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        logprobs = torch.log_softmax(logits, dim=-1)
        scores = self.processors(self._input_ids, logits.clone())
        if self.params.temperature == 0:
            tokens = scores.argmax(dim=-1)
        else:
            cdf = torch.softmax(scores, dim=-1, dtype=torch.float64).cumsum(dim=-1)
            draws = torch.cat(
                [
                    torch.rand(1, generator=self.generators[r], dtype=torch.float64)
                    for r in self._active
                ]
            ).to(cdf.device)
            tokens = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(1), right=True)
            tokens = tokens.squeeze(1).clamp(max=logits.shape[-1] - 1)
        chosen = logprobs.gather(1, tokens.unsqueeze(1)).squeeze(1)
        k = self.params.top_logprobs
        top = logprobs.topk(k, dim=-1) if k else None
        for i, row in enumerate(self._active):
            completion = self.completions[row]
            completion.token_ids.append(int(tokens[i]))
            completion.logprobs.append(float(chosen[i]))
            if top is not None:
                completion.top_ids.append(top.indices[i].tolist())
                completion.top_logprobs.append(top.values[i].tolist())
        return tokens

    def _append(self, tokens: torch.Tensor) -> None:
        stopped = torch.isin(tokens.cpu(), self.eos).tolist()
        still = []
        for i, row in enumerate(self._active):
            completion = self.completions[row]
            if stopped[i] or self._hit_stop_string(completion.token_ids):
                completion.finish_reason = "stop"
            elif len(completion.token_ids) >= self.params.max_new_tokens:
                completion.finish_reason = "length"
            else:
                still.append(i)
        if len(still) < len(self._active):
            self._select(still)

    def _hit_stop_string(self, token_ids: list[int]) -> bool:
        if not self._max_stop:
            return False
        tail = self.lm.tokenizer.decode(token_ids[-(self._max_stop + 2) :])
        return any(stop in tail for stop in self.params.stop)

    def _select(self, keep: list[int]) -> None:
        if len(keep) == len(self._active):
            return
        self._active = [self._active[i] for i in keep]
        if self._cache is not None and keep:
            index = torch.tensor(keep, device=self.lm.device)
            self._cache.batch_select_indices(index)
            self._mask, self._positions = self._mask[index], self._positions[index]
            self._input_ids = self._input_ids[index]
