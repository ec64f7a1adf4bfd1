"""A stand-in for ``vllm.LLM`` on CPU, for the orchestration around the vLLM backend.

:class:`FakeLLM` answers ``generate(prompts, sampling_params, use_tqdm=...)`` with objects shaped
like vLLM's ``RequestOutput``/``CompletionOutput``/``Logprob``, sampling each request with
thinkscope's own :class:`BatchSampler` on an HF model (one seeded stream per request, so a
request's tokens depend on its seed and prompt only). It keeps a prefix cache of full blocks
of ``BLOCK`` tokens, as vLLM's automatic prefix caching does, and reports the prompt tokens it
found there as ``num_cached_tokens`` (always recomputing at least the last prompt token).
Every request is recorded in ``calls``; every engine built in ``FakeLLM.made``.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections import defaultdict
from dataclasses import dataclass

from thinkscope.generation.sampler import BatchSampler, Completion, SamplingParams

BLOCK = 4


@dataclass
class Logprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int


@dataclass
class Output:  # vllm.outputs.CompletionOutput
    token_ids: list
    logprobs: list
    finish_reason: str
    index: int = 0


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput
    prompt_token_ids: list
    outputs: list
    num_cached_tokens: int


def _steps(done: Completion) -> list[dict]:
    """vLLM's per-step log-prob dicts: the top-k by rank, plus the sampled token if outside."""
    steps = []
    for t, token in enumerate(done.token_ids):
        step = {
            i: Logprob(lp, r + 1)
            for r, (i, lp) in enumerate(zip(done.top_ids[t], done.top_logprobs[t], strict=True))
        }
        step.setdefault(token, Logprob(done.logprobs[t], len(step) + 1))
        steps.append(step)
    return steps


class FakeLLM:
    lm = None  # the HF model every FakeLLM samples with
    made: list[dict] = []  # constructor arguments of every engine built

    def __init__(self, **engine) -> None:
        FakeLLM.made.append(engine)
        self.calls: list[list[dict]] = []  # per generate call: its requests and outputs
        self.blocks: set[tuple[int, ...]] = set()

    def _cached(self, ids: list[int]) -> int:
        for m in range((len(ids) - 1) // BLOCK * BLOCK, 0, -BLOCK):
            if tuple(ids[:m]) in self.blocks:
                return m
        return 0

    def generate(self, prompts, sampling, use_tqdm: bool = True) -> list[RequestOutput]:
        groups = defaultdict(list)  # one sampler per max_tokens
        for i, params in enumerate(sampling):
            assert params["n"] == 1
            groups[params["max_tokens"]].append(i)
        done = {}
        for limit, rows in groups.items():
            first = sampling[rows[0]]
            params = SamplingParams(
                temperature=first["temperature"],
                top_p=first["top_p"],
                top_k=first["top_k"],
                min_p=first["min_p"],
                max_new_tokens=limit,
                stop=tuple(first["stop"]),
                top_logprobs=first["logprobs"],
            )
            sampler = BatchSampler(
                self.lm,
                [prompts[i]["prompt_token_ids"] for i in rows],
                [sampling[i]["seed"] for i in rows],
                params,
            )
            sampler.run()
            done.update(zip(rows, sampler.completions, strict=True))
        outputs, call = [], []
        for i, prompt in enumerate(prompts):
            ids, completion = list(prompt["prompt_token_ids"]), done[i]
            cached = self._cached(ids)
            seen = ids + completion.token_ids[:-1]  # the last token never ran through the model
            self.blocks.update(tuple(seen[:m]) for m in range(BLOCK, len(seen) + 1, BLOCK))
            output = Output(
                list(completion.token_ids), _steps(completion), completion.finish_reason
            )
            outputs.append(RequestOutput(ids, [output], cached))
            call.append(
                dict(
                    prompt=ids,
                    params=dict(sampling[i]),
                    tokens=output.token_ids,
                    finish=output.finish_reason,
                    prefill=len(ids) - cached,
                )
            )
        self.calls.append(call)
        return outputs


def install(monkeypatch, lm) -> None:
    """Make ``import vllm`` give a module whose ``LLM`` is :class:`FakeLLM` sampling with ``lm``
    (``SamplingParams``: ``dict``), and pretend CUDA is present."""
    import thinkscope.generation.backends

    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM, module.SamplingParams = FakeLLM, dict
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(FakeLLM, "lm", lm)
    monkeypatch.setattr(FakeLLM, "made", [])
    monkeypatch.setattr(thinkscope.generation.backends, "cuda_available", lambda: True)
