"""The ``vllm`` backend: vLLM's offline ``LLM`` on CUDA, filling thinkscope's columns.

Written against vLLM 0.31 (``pip install thinkscope[gpu]``; the decoding processor needs its
V1 model runner); vllm is imported only inside
:class:`VLLMBackend`, so everything else here runs (and is tested) without it.

- One request per sample (``n=1``) with its own ``seed``: a sample's tokens depend on its seed
  and prompt, not on the batch, so a resumed run reproduces them. Samples of one prompt share
  its KV blocks through prefix caching, so the prompt is prefilled once.
- ``logprobs_mode="raw_logprobs"``: the recorded log-probs are the model's own distribution
  before temperature and truncation, as with the ``hf`` backend; ``logprobs=top_logprobs``.
- Temperature, top-k, top-p and min-p map to vLLM's own sampler; the correctness-first knobs
  of :class:`~thinkscope.decoding.DecodingConfig` run in thinkscope's vLLM logits processor
  (:mod:`thinkscope.decoding.vllm_processor`, registered with the engine). Per-step logs are
  not available (:class:`UserError`).
- :meth:`VLLMBackend.extend` continues samples from the token ids ``prompt + prefix`` (Think@n,
  DeepConf): vLLM's prefix cache holds the full KV blocks (16 tokens by default) of the prompt
  and prefix, so only the last, partial block is recomputed (unless the cache evicted blocks
  meanwhile); each request's recomputed prompt tokens are reported as its prefill.

Not measured on GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from thinkscope.core.errors import RunFailure, UserError
from thinkscope.generation.sampler import Completion, SamplingParams
from thinkscope.generation.seeds import continuation_seed

VLLM_VERSION = "0.31.0"


@dataclass
class Generated:
    """What one ``complete``/``extend`` call produced: ``completions`` (request order),
    ``generated_tokens`` sampled by the call and ``prefills``, per completion, the prompt
    tokens vLLM ran through the model for it (those it did not find in its prefix cache; 0
    where the call made no request)."""

    completions: list[Completion] = field(default_factory=list)
    generated_tokens: int = 0
    prefills: list[int] = field(default_factory=list)

    @property
    def prefill_tokens(self) -> int:
        return sum(self.prefills)


def first_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def unfinished(completion: Completion, max_new_tokens: int) -> bool:
    """Was ``completion`` cut by a ``max_tokens`` below ``max_new_tokens`` (so it can go on)?"""
    return completion.finish_reason == "length" and len(completion.token_ids) < max_new_tokens


def sampling_kwargs(params: SamplingParams, seed: int, eos: Sequence[int], max_tokens: int) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` for one sample of ``params``.

    Temperature/top-k/top-p/min-p alone go to vLLM's own sampler; with any correctness-first
    knob the whole :class:`~thinkscope.decoding.DecodingConfig` travels in ``extra_args`` to
    thinkscope's vLLM logits processor, and vLLM's own knobs stay at their no-op values.
    """
    if params.log_steps:
        raise UserError("the vllm backend cannot record per-step logs; use --backend hf")
    decoding = params.decoding
    basic = {"temperature", "top_k", "top_p", "min_p"}
    extra = decoding is not None and any(
        v is not None for v in decoding.model_dump(exclude=basic).values()
    )
    knobs = dict(
        temperature=params.temperature, top_p=params.top_p, top_k=params.top_k, min_p=params.min_p
    )
    if extra:
        try:
            from thinkscope.decoding.batch import EXTRA_ARG
        except ImportError:
            raise UserError(
                "the correctness-first decoding knobs need thinkscope's vLLM logits processor, "
                "which this installation lacks; use --backend hf"
            ) from None
        knobs = dict(
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            min_p=0.0,
            extra_args={EXTRA_ARG: decoding.model_dump(exclude_none=True)},
        )
    return dict(
        n=1,
        seed=int(seed),
        **knobs,
        max_tokens=max_tokens,
        stop=list(params.stop),
        stop_token_ids=sorted(eos),
        include_stop_str_in_output=True,
        logprobs=params.top_logprobs,
    )


def build_requests(
    prompts: Sequence[Sequence[int]],
    seeds: Sequence[int],
    params: SamplingParams,
    eos: Sequence[int],
    make_params: Callable[..., object] = dict,
    max_tokens: Sequence[int] | None = None,
) -> tuple[list[dict], list]:
    """``(prompts, sampling params)`` for ``LLM.generate``: token-id prompts, one per sample."""
    if len(prompts) != len(seeds):
        raise ValueError("need one seed per prompt")
    limits = max_tokens or [params.max_new_tokens] * len(prompts)
    inputs = [{"prompt_token_ids": list(p)} for p in prompts]
    sampling = [
        make_params(**sampling_kwargs(params, seed, eos, limit))
        for seed, limit in zip(seeds, limits, strict=True)
    ]
    return inputs, sampling


def to_completion(output, top_logprobs: int) -> Completion:
    """One ``vllm.CompletionOutput`` as a :class:`Completion`: the sampled tokens' log-probs and
    the top ``top_logprobs`` ids/log-probs per step, ordered by vLLM's rank."""
    ids = list(output.token_ids)
    steps = output.logprobs or []
    if len(steps) != len(ids):
        raise ValueError(f"vLLM returned {len(steps)} log-prob steps for {len(ids)} tokens")
    done = Completion(token_ids=ids, finish_reason=output.finish_reason)
    for token, step in zip(ids, steps, strict=True):
        done.logprobs.append(float(step[token].logprob))
        if top_logprobs:
            ranked = sorted(step.items(), key=lambda kv: (kv[1].rank, -kv[1].logprob))
            top = ranked[:top_logprobs]
            done.top_ids.append([int(i) for i, _ in top])
            done.top_logprobs.append([float(v.logprob) for _, v in top])
    return done


def collect(outputs, top_logprobs: int) -> Generated:
    """``LLM.generate``'s request outputs (one sample each, in request order) as
    :class:`Generated`; a request's prefill is its prompt tokens vLLM did not find in its cache
    (``RequestOutput.num_cached_tokens``)."""
    out = Generated()
    for request in outputs:
        (sample,) = request.outputs
        out.completions.append(to_completion(sample, top_logprobs))
        out.prefills.append(len(request.prompt_token_ids) - (request.num_cached_tokens or 0))
    out.generated_tokens = sum(len(c.token_ids) for c in out.completions)
    return out


def merge(prefix: Completion, rest: Completion) -> Completion:
    """A prefix and its continuation as one completion."""
    return Completion(
        token_ids=prefix.token_ids + rest.token_ids,
        logprobs=prefix.logprobs + rest.logprobs,
        top_ids=prefix.top_ids + rest.top_ids,
        top_logprobs=prefix.top_logprobs + rest.top_logprobs,
        finish_reason=rest.finish_reason,
    )


class VLLMBackend:
    """vLLM's offline engine with prefix caching and the model's raw log-probs.

    ``spec`` (a :class:`~thinkscope.models.ModelSpec` or a model name) and ``placement`` (an
    :class:`~thinkscope.models.spec.EngineSpec`: tensor parallelism, GPU memory, context
    length; default: its defaults) reach ``vllm.LLM`` through their ``vllm_args()``;
    ``engine``: more ``vllm.LLM`` keyword arguments, which win. An engine that cannot start
    (vLLM fails to import, or its constructor raises) is a :class:`RunFailure` whose one line
    says why. :meth:`around` wraps an engine that is already built (or a stand-in).
    """

    name = "vllm"

    def __init__(
        self,
        spec,
        seed: int = 0,
        placement=None,
        max_logprobs: int = 20,
        logits_processors: Sequence = (),
        **engine,
    ) -> None:
        from transformers import GenerationConfig

        from thinkscope.models.lm import load_tokenizer, resolve_source
        from thinkscope.models.spec import EngineSpec, ModelSpec

        spec = ModelSpec.of(spec)
        source = str(resolve_source(spec.model))
        tokenizer = load_tokenizer(spec)
        eos = {tokenizer.eos_token_id}
        try:
            gen_eos = GenerationConfig.from_pretrained(source).eos_token_id
            eos.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        except OSError:
            pass
        try:
            from thinkscope.decoding.vllm_processor import DecodingLogitsProcessor

            logits_processors = [DecodingLogitsProcessor, *logits_processors]
        except ImportError:
            pass
        if logits_processors:
            engine["logits_processors"] = list(logits_processors)
        args = dict(
            model=source,
            tokenizer=source,
            seed=seed,
            enable_prefix_caching=True,
            logprobs_mode="raw_logprobs",
            max_logprobs=max_logprobs,
            **spec.vllm_args(),
            **(placement or EngineSpec()).vllm_args(),
        )
        try:
            from vllm import LLM
            from vllm import SamplingParams as VLLMSamplingParams

            llm = LLM(**{**args, **engine})
        except Exception as err:  # noqa: BLE001 - any failure to start is reported in one line
            raise RunFailure(f"vLLM could not start: {first_line(err)}") from err
        self._setup(llm, tokenizer, eos, VLLMSamplingParams)

    @classmethod
    def around(cls, llm, tokenizer, eos: Iterable[int], make_params: Callable = dict):
        """A backend on the engine ``llm`` (anything with vLLM's ``generate``);
        ``make_params`` builds one request's sampling params from keyword arguments."""
        backend = cls.__new__(cls)
        backend._setup(llm, tokenizer, eos, make_params)
        return backend

    def _setup(self, llm, tokenizer, eos: Iterable[int], make_params: Callable) -> None:
        self.llm, self.tokenizer, self._make_params = llm, tokenizer, make_params
        self.eos = sorted(i for i in eos if i is not None)

    def _run(self, prompts, seeds, params: SamplingParams, max_tokens=None) -> Generated:
        inputs, sampling = build_requests(
            prompts, seeds, params, self.eos, self._make_params, max_tokens
        )
        outputs = self.llm.generate(inputs, sampling, use_tqdm=False)
        return collect(outputs, params.top_logprobs)

    def complete(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[int],
        params: SamplingParams,
        max_tokens: int | None = None,
    ) -> Generated:
        """One sample per prompt, at most ``max_tokens`` (default: the params') tokens each."""
        limit = min(max_tokens or params.max_new_tokens, params.max_new_tokens)
        return self._run(prompts, seeds, params, [limit] * len(prompts))

    def extend(
        self,
        prompts: Sequence[Sequence[int]],
        prefixes: Sequence[Completion],
        seeds: Sequence[int],
        params: SamplingParams,
        max_tokens: int | None = None,
    ) -> Generated:
        """Continue each :func:`unfinished` prefix by up to ``max_tokens`` tokens (default: up
        to ``params.max_new_tokens`` in all) from ``prompt + prefix`` token ids, which vLLM finds
        in its prefix cache, with the seed
        :func:`~thinkscope.generation.seeds.continuation_seed` of its own. Finished prefixes
        are returned as they are (no request, prefill 0)."""
        todo = [i for i, p in enumerate(prefixes) if unfinished(p, params.max_new_tokens)]
        room = [params.max_new_tokens - len(prefixes[i].token_ids) for i in todo]
        more = (
            self._run(
                [list(prompts[i]) + prefixes[i].token_ids for i in todo],
                [continuation_seed(seeds[i]) for i in todo],
                params,
                [min(r, max_tokens or r) for r in room],
            )
            if todo
            else Generated()
        )
        out = Generated(list(prefixes), more.generated_tokens, [0] * len(prefixes))
        for i, rest, prefill in zip(todo, more.completions, more.prefills, strict=True):
            out.completions[i] = merge(prefixes[i], rest)
            out.prefills[i] = prefill
        return out
