"""Batched sampling with a KV cache, one random stream per sample, and per-token records.

Each row draws one uniform number per step from its own seeded generator and samples by
inverse CDF, so a sample's tokens depend on its seed and its prompt, not on which other
rows share the batch: a resumed run or a pruned pool reproduces the same samples. Finished
rows leave the batch (their cache rows are dropped), and identical prompts are prefilled once.

Rows are selected with the cache's ``reorder_cache`` (the contract beam search relies on), which
every transformers cache layer implements: key/value, sliding-window, and the conv, SSM and
linear-attention states of hybrid and state-space models. (``batch_select_indices`` exists only
on key/value layers and, on a hybrid layer, selects its keys and values but not its states.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, LogitsProcessorList

from thinkscope.core.errors import UserError
from thinkscope.decoding import DecodingConfig, decode_step
from thinkscope.models import LM

HiddenCallback = Callable[[list[int], list[torch.Tensor]], None]


@functools.lru_cache(maxsize=8)
def _stop_candidates(tokenizer, stops: tuple[str, ...]) -> list[bool]:
    """Per token id ``[V]``: can this token, sampled last, complete one of ``stops``? True when
    its text holds a stop string's last character, is empty or holds an incomplete UTF-8
    sequence (U+FFFD), or starts a word (``▁``) when a stop string ends in a space."""
    ends = {stop[-1] for stop in stops}
    ids = range(len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in ids])
    pieces = tokenizer.convert_ids_to_tokens(list(ids))
    return [
        not text
        or "\ufffd" in text
        or any(end in text for end in ends)
        or (" " in ends and str(piece).startswith("\u2581"))
        for text, piece in zip(texts, pieces, strict=True)
    ]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` is greedy; ``top_logprobs`` > 0 records top-k.

    ``decoding`` is the one rule tokens are drawn by (:func:`thinkscope.decoding.decode_step`).
    Leave it unset to build it from ``temperature``/``top_p``/``top_k``/``min_p``; set it for
    the correctness-first knobs, and those four fields then mirror it. ``log_steps`` records
    each step's ``pmax``, the sampled token's rank and probability under the model's own
    distribution, and the kept count (see :class:`Completion`).
    """

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0
    decoding: DecodingConfig | None = None
    log_steps: bool = False

    def __post_init__(self) -> None:
        if self.decoding is not None:
            mirror = self.decoding.model_dump(include={"temperature", "top_p", "top_k", "min_p"})
            for name, value in mirror.items():
                default = type(self).__dataclass_fields__[name].default
                value = default if value is None else value
                if getattr(self, name) not in (default, value):
                    raise ValueError(f"{name} is set both here and in decoding; set it once")
                object.__setattr__(self, name, value)
        if self.temperature < 0 or not 0 < self.top_p <= 1 or not 0 <= self.min_p < 1:
            raise UserError("need temperature >= 0, 0 < top_p <= 1 and 0 <= min_p < 1")
        if self.max_new_tokens < 1 or self.top_k < 0 or self.top_logprobs < 0:
            raise UserError("need max_new_tokens >= 1, top_k >= 0 and top_logprobs >= 0")
        if self.decoding is None:
            basics = dict(
                temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p
            )
            object.__setattr__(self, "decoding", DecodingConfig(**basics))


@dataclass
class Completion:
    """What one sample generated.

    ``logprobs`` are under the model's own distribution (before temperature and truncation);
    ``finish_reason`` is ``stop`` (EOS or stop string), ``length``, or ``pruned`` (dropped by
    :meth:`BatchSampler.keep`). With ``SamplingParams(log_steps=True)``, per token:
    ``step_pmax`` (max of the temperature-scaled distribution p the decoding rule sees),
    ``step_rank`` (1-based rank of the sampled token under the model's own distribution: one
    plus the number of tokens strictly more likely), ``step_prob`` (its probability there) and
    ``step_kept`` (tokens the rule kept).
    """

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_ids: list[list[int]] = field(default_factory=list)
    top_logprobs: list[list[float]] = field(default_factory=list)
    finish_reason: str | None = None
    step_pmax: list[float] = field(default_factory=list)
    step_rank: list[int] = field(default_factory=list)
    step_prob: list[float] = field(default_factory=list)
    step_kept: list[int] = field(default_factory=list)


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
        self.processors = LogitsProcessorList(processors)  # applied before params.decoding
        self.completions = [Completion() for _ in prompts]
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.prefill_tokens = 0
        self._prompts = [list(p) for p in prompts]
        self._active = list(range(len(prompts)))  # original row of each batch row
        self._cache: DynamicCache | None = None
        self._stops = _stop_candidates(lm.tokenizer, params.stop) if params.stop else None
        self._max_stop = max((len(s) for s in params.stop), default=0)
        if not lm.model._supports_default_dynamic_cache():
            kind = lm.model.config.model_type
            raise UserError(
                f"model type {kind!r} cannot generate on the HF backend: it keeps its own kind "
                "of cache, not transformers' DynamicCache"
            )
        forward_args = inspect.signature(lm.model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._keep_last = {"logits_to_keep": 1} if "logits_to_keep" in forward_args else {}
        # as transformers' generate: positions only to a forward that names them (not Mamba2)
        self._with_positions = "position_ids" in forward_args

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
        if self._cache is None:
            return self._prefill(record)
        ids = self._last.to(self.lm.device).unsqueeze(1)  # last sampled tokens, never via the host
        self._mask = torch.cat([self._mask, torch.ones_like(ids)], dim=1)
        positions = self._positions[:, -1:] + 1
        self._positions = positions
        with self.lm.record_blocks() if record else nullcontext() as states:
            logits = self._call(ids, self._mask, positions)
        self._input_ids = torch.cat([self._input_ids, ids], dim=1)
        return logits, states or []

    def _prefill(self, record: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Prefill each distinct prompt once, then copy its cache row to every sample of it.

        Only the last position's logits are computed (``logits_to_keep=1``) and only the last
        position's block outputs ``[B, 1, d]`` are expanded per sample.
        """
        device, pad = self.lm.device, self.lm.tokenizer.pad_token_id
        unique = list(dict.fromkeys(tuple(p) for p in self._prompts))
        index = torch.tensor([unique.index(tuple(p)) for p in self._prompts], device=device)
        width = max(len(p) for p in unique)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in unique], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in unique], device=device)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        self._cache = DynamicCache(config=self.lm.model.config)
        with self.lm.record_blocks() if record else nullcontext() as states:
            logits = self._call(ids, mask, positions, **self._keep_last)[:, -1:]
        self.prefill_tokens = sum(len(p) for p in unique)
        self._cache.reorder_cache(index)
        self._mask, self._positions, self._input_ids = mask[index], positions[index], ids[index]
        return logits[index], [s[:, -1:][index] for s in states or []]

    def _call(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, **extra
    ) -> torch.Tensor:
        """Logits ``[B, t, V]`` of ``ids`` ``[B, t]`` after the cache (which they extend)."""
        if self._with_positions:
            extra["position_ids"] = positions
        return self.lm.model(
            input_ids=ids,
            attention_mask=mask,
            use_cache=True,
            **{self._cache_arg: self._cache},
            **extra,
        ).logits

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        """Draw one token per active row; its records reach the host in one transfer."""
        logprobs = torch.log_softmax(logits, dim=-1)
        if self.processors:
            logits = self.processors(self._input_ids, logits.clone())
        step = decode_step(logits, self.params.decoding)
        if self.params.temperature == 0:
            tokens = step.scores.argmax(dim=-1)
        else:
            cdf = torch.softmax(step.scores, dim=-1, dtype=torch.float64).cumsum(dim=-1)
            draws = torch.cat(
                [
                    torch.rand(1, generator=self.generators[r], dtype=torch.float64)
                    for r in self._active
                ]
            ).to(cdf.device)
            tokens = torch.searchsorted(cdf, (draws * cdf[:, -1]).unsqueeze(1), right=True)
            tokens = tokens.squeeze(1).clamp(max=logits.shape[-1] - 1)
        chosen = logprobs.gather(1, tokens.unsqueeze(1))
        columns = [tokens.unsqueeze(1), chosen]
        k = self.params.top_logprobs
        if k:
            top = logprobs.topk(k, dim=-1)
            columns += [top.indices, top.values]
        if self.params.log_steps:
            rank = (logprobs > chosen).sum(dim=-1) + 1
            columns += [step.pmax, rank, chosen.squeeze(1).exp(), step.kept]
        host = torch.cat([c.double().reshape(len(tokens), -1) for c in columns], 1).tolist()
        for values, row in zip(host, self._active, strict=True):
            completion = self.completions[row]
            completion.token_ids.append(int(values[0]))
            completion.logprobs.append(values[1])
            if k:
                completion.top_ids.append([int(v) for v in values[2 : 2 + k]])
                completion.top_logprobs.append(values[2 + k : 2 + 2 * k])
            if self.params.log_steps:
                pmax, rank, prob, kept = values[2 + 2 * k :]
                completion.step_pmax.append(pmax)
                completion.step_rank.append(int(rank))
                completion.step_prob.append(prob)
                completion.step_kept.append(int(kept))
        return tokens

    def _append(self, tokens: torch.Tensor) -> None:
        """Finish rows that hit EOS, a stop string or the length limit; no device sync (the
        sampled ids are on the host already, in the completions)."""
        self._last = tokens
        eos, hits = self.lm.eos_token_ids, self._hit_stop_string()
        still = []
        for i, row in enumerate(self._active):
            completion = self.completions[row]
            if completion.token_ids[-1] in eos or hits[i]:
                completion.finish_reason = "stop"
            elif len(completion.token_ids) >= self.params.max_new_tokens:
                completion.finish_reason = "length"
            else:
                still.append(i)
        if len(still) < len(self._active):
            self._select(still)

    def _hit_stop_string(self) -> list[bool]:
        """Per active row: does a stop string appear in the text of its last tokens? Only rows
        whose newest token can complete a stop string (:func:`_stop_candidates`) are decoded."""
        hits = [False] * len(self._active)
        if self._stops is None:
            return hits
        for i, row in enumerate(self._active):
            ids = self.completions[row].token_ids
            if ids[-1] >= len(self._stops) or self._stops[ids[-1]]:
                tail = self.lm.tokenizer.decode(ids[-(self._max_stop + 2) :])
                hits[i] = any(stop in tail for stop in self.params.stop)
        return hits

    def _select(self, keep: list[int]) -> None:
        if len(keep) == len(self._active):
            return
        self._active = [self._active[i] for i in keep]
        if self._cache is not None and keep:
            index = torch.tensor(keep, device=self.lm.device)
            self._cache.reorder_cache(index)
            self._mask, self._positions = self._mask[index], self._positions[index]
            self._input_ids, self._last = self._input_ids[index], self._last[keep]
