"""The selection methods on a generation engine that samples in stages (the vLLM backend).

Such an engine (:class:`~thinkscope.generation.backends.vllm.VLLMBackend`) cannot stop a sample
in the middle of a call or show its hidden states, but it can generate at most ``max_tokens``
tokens (``complete``) and continue a sample from its exact token ids, its prompt and prefix
served from the prefix cache (``extend``). So:

- Think@n and Self-Certainty@n: generate the first ``prefix`` tokens of all n samples, score
  them with thinkscope's lens on the HF model of the pool (one batched forward of prompt +
  prefix, :func:`~thinkscope.lens.forward.sampled_states`: the positions each token was
  sampled from, as the HF sampler's ``on_hidden`` sees them), continue only the kept ones.
- DeepConf online: warm-up samples run to the end; the others run in rounds of
  ``round_tokens`` tokens, and a sample whose window confidence fell below the bar inside a
  round stops there. It keeps (and is charged) the tokens it drew after the stop step in
  that round, at most ``round_tokens - 1``.

Token accounting is the HF path's: every sampled token counts; ``prefill_tokens`` are the
prompt tokens the engine ran through the model (what its prefix cache did not serve).
A continuation draws from a fresh seeded stream (:func:`~thinkscope.generation.seeds.
continuation_seed`), so past the prefix a kept sample differs from its Cons@n twin
(``pool_mismatches`` counts them). Not measured on GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from thinkscope.generation.backends.vllm import Generated, unfinished
from thinkscope.generation.sampler import Completion
from thinkscope.generation.seeds import continuation_seed
from thinkscope.lens.forward import sampled_states
from thinkscope.metrics.confidence import group_confidences
from thinkscope.select.deepconf import online_bars, token_confidences, vote_confident
from thinkscope.select.pool import Generation, Pool, Sample
from thinkscope.select.think import PrefixScore, kept_count
from thinkscope.select.vote import top_k

ROUND_TOKENS = 32  # DeepConf online: tokens per round between stop checks


def requests(pool: Pool, samples: Sequence[Sample]) -> tuple[list[list[int]], list[int]]:
    """Prompt ids and seeds of ``samples``, one per sample."""
    return [pool.prompts[q] for q, _ in samples], [pool.seeds[q][k] for q, k in samples]


def prefill_by_question(pool: Pool, samples: Sequence[Sample], prefills: Sequence[int]):
    """Per question ``[Q]``: the engine-reported prefill of its samples' requests."""
    out = [0] * pool.questions
    for (q, _), tokens in zip(samples, prefills, strict=True):
        out[q] += tokens
    return out


def record(
    out: Generation,
    pool: Pool,
    samples: Sequence[Sample],
    *calls: Generated,
    completions: Sequence[Completion] | None = None,
) -> None:
    """Record ``completions`` (default: the last call's) of ``samples`` with the prefill of
    every engine call in ``calls`` (each with one entry per sample)."""
    prefill = [sum(c.prefills[i] for c in calls) for i in range(len(samples))]
    out.record(
        samples, completions or calls[-1].completions, prefill_by_question(pool, samples, prefill)
    )


def cons_at_n(pool: Pool, engine) -> Generation:
    """Cons@n: every sample to completion, one vote each."""
    samples = pool.samples()
    done = engine.complete(*requests(pool, samples), pool.params)
    out = Generation.empty(pool)
    record(out, pool, samples, done)
    out.voters = [list(range(pool.n)) for _ in range(pool.questions)]
    out.weights = [[1.0] * pool.n for _ in range(pool.questions)]
    return out


def score_prefixes(
    lm,
    score: PrefixScore,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Completion],
    batch_size: int,
) -> None:
    """Feed ``score`` the block outputs each token of ``completions[i]`` was sampled from, as
    row ``i``, ``batch_size`` sequences per forward pass."""
    for start in range(0, len(prompts), batch_size):
        rows = range(start, min(start + batch_size, len(prompts)))
        tokens = [completions[i].token_ids for i in rows]
        states, _ = sampled_states(lm, [prompts[i] for i in rows], tokens)
        score([i for i, t in zip(rows, tokens, strict=True) for _ in t], states)


def think_at_n(
    pool: Pool, engine, score: PrefixScore, prefix: int, keep_ratio: float, batch_size: int = 64
) -> Generation:
    """Think@n on ``engine``: ``prefix`` tokens of every sample, scored by ``score`` on the
    pool's HF model; each question's top ``keep_ratio`` continue from their prefix ids and
    vote, one vote each; the others stop (``pruned``) with their prefix tokens counted."""
    samples = pool.samples()
    prompts, seeds = requests(pool, samples)
    first = engine.complete(prompts, seeds, pool.params, max_tokens=prefix)
    score_prefixes(pool.lm, score, prompts, first.completions, batch_size)
    scores = [[score.score(q * pool.n + k) for k in range(pool.n)] for q in range(pool.questions)]
    voters = [top_k(row, kept_count(pool.n, keep_ratio)) for row in scores]
    kept = [q * pool.n + k for q, row in enumerate(voters) for k in row]
    more = engine.extend(
        [prompts[i] for i in kept],
        [first.completions[i] for i in kept],
        [seeds[i] for i in kept],
        pool.params,
    )
    completions, prefill = list(first.completions), [0] * len(samples)
    for i, whole, tokens in zip(kept, more.completions, more.prefills, strict=True):
        completions[i], prefill[i] = whole, tokens
    kept_rows = set(kept)
    for i, completion in enumerate(completions):
        if i not in kept_rows and unfinished(completion, pool.params.max_new_tokens):
            completions[i] = dataclasses.replace(completion, finish_reason="pruned")
    out = Generation.empty(pool)
    record(out, pool, samples, first, Generated(prefills=prefill), completions=completions)
    out.voters, out.weights, out.scores = voters, [[1.0] * len(row) for row in voters], scores
    out.lens_s, out.lens_flops = score.seconds, score.flops
    return out


def first_drop(completion: Completion, bar: float, window: int, after: int) -> int | None:
    """The first step ``t > after`` (1-based) at which the mean token confidence of steps
    ``t - window + 1 .. t`` is below ``bar`` (``None``: none)."""
    confidences = token_confidences(completion)
    if len(confidences) < window:
        return None
    means = group_confidences(confidences, window)  # means[j]: the window ending at step j + window
    below = (means < bar).nonzero().flatten() + window
    below = below[below > after]
    return int(below[0]) if len(below) else None


def deepconf_online(
    pool: Pool, engine, warmup: int, eta: float, window: int, round_tokens: int = ROUND_TOKENS
) -> Generation:
    """DeepConf online on ``engine`` (the rule of :func:`~thinkscope.select.deepconf.
    deepconf_online`, checked after each round of ``round_tokens`` tokens)."""
    out, limit = Generation.empty(pool), pool.params.max_new_tokens
    first = pool.samples(0, warmup)
    record(out, pool, first, engine.complete(*requests(pool, first), pool.params))
    bars = online_bars(out, warmup, eta, window)
    rest = pool.samples(warmup)
    if rest:
        prompts, seeds = requests(pool, rest)
        calls = [engine.complete(prompts, seeds, pool.params, max_tokens=round_tokens)]
        current, before = list(calls[0].completions), [0] * len(rest)
        while True:
            for i, (q, _) in enumerate(rest):
                length = len(current[i].token_ids)
                if length == before[i]:
                    continue  # stopped or finished before this round
                stop = first_drop(current[i], bars[q], window, before[i])
                if stop is not None and (stop < length or unfinished(current[i], limit)):
                    current[i] = dataclasses.replace(current[i], finish_reason="pruned")
            if not any(unfinished(c, limit) for c in current):
                break
            before = [len(c.token_ids) for c in current]
            calls.append(engine.extend(prompts, current, seeds, pool.params, round_tokens))
            seeds = [continuation_seed(s) for s in seeds]  # the stream the next round draws
            current = list(calls[-1].completions)
        record(out, pool, rest, *calls, completions=current)
    vote_confident(out, bars, window)
    return out
