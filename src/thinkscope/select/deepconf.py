"""DeepConf (arXiv 2508.15260): filter and weight samples by their lowest group confidence.

Token confidence ``C_t = -(1/k) sum_{j<=k} log P_t(j)`` over the top k (=20) log-probs of the
model's own distribution; group confidence is its mean over a sliding window of ``window``
tokens (the whole trace when shorter); a trace's score is its lowest group confidence.
Samples need ``SamplingParams(top_logprobs=20)``.

- :func:`deepconf_offline` needs all n samples complete, so it reuses a Cons@n generation and
  costs exactly what Cons@n cost.
- :func:`deepconf_online` stops early for real: warm-up samples set the threshold, and each
  later sample is cut (``BatchSampler.keep``) at the first step whose window confidence falls
  below it; its tokens up to there are counted.
"""

from __future__ import annotations

import torch

from thinkscope.generation.sampler import Completion
from thinkscope.metrics.confidence import group_confidences, token_confidence
from thinkscope.select.pool import Generation, Pool
from thinkscope.select.think import kept_count
from thinkscope.select.vote import top_k


def token_confidences(completion: Completion) -> torch.Tensor:
    """``[T]`` token confidences of one sample
    (:func:`thinkscope.metrics.confidence.token_confidence` of its sampled top-k log-probs)."""
    if len(completion.top_logprobs) != len(completion.token_ids) or not completion.token_ids:
        raise ValueError(
            "DeepConf needs the top-k log-probs of every token: sample with "
            "SamplingParams(top_logprobs=20)"
        )
    return token_confidence(torch.tensor(completion.top_logprobs, dtype=torch.float64))


def lowest_group_confidence(completion: Completion, window: int) -> float:
    return float(group_confidences(token_confidences(completion), window).min())


def deepconf_offline(complete: Generation, eta: float, window: int) -> Generation:
    """Keep each question's top ``ceil(eta * n)`` samples by lowest group confidence; they vote
    weighted by it. Reuses ``complete`` (all n samples finished): its cost is Cons@n's."""
    voters, weights, scores = [], [], []
    for row in complete.completions:
        confidence = [lowest_group_confidence(c, window) for c in row]
        keep = top_k(confidence, kept_count(len(row), eta))
        voters.append(keep)
        weights.append([confidence[k] for k in keep])
        scores.append(confidence)
    return Generation(complete.completions, voters, weights, complete.prefill_tokens, scores)


def deepconf_online(pool: Pool, warmup: int, eta: float, window: int) -> Generation:
    """DeepConf online: samples ``0..warmup-1`` of each question run to the end; the threshold
    is the ``1 - eta`` quantile of their lowest group confidences. Samples ``warmup..n-1`` then
    decode step by step and stop as soon as their last ``window`` tokens average below it.
    Voters: warm-up and unstopped samples whose lowest group confidence reaches the threshold,
    weighted by it (as the reference implementation does)."""
    out = Generation.empty(pool)
    first = pool.samples(0, warmup)
    sampler = pool.sampler(first)
    sampler.run()
    out.add(pool, sampler, first)
    bars = online_bars(out, warmup, eta, window)
    if warmup < pool.n:
        rest = pool.samples(warmup)
        sampler = pool.sampler(rest)
        _decode_with_stops(sampler, [bars[q] for q, _ in rest], window)
        out.add(pool, sampler, rest)
    vote_confident(out, bars, window)
    return out


def online_bars(out: Generation, warmup: int, eta: float, window: int) -> list[float]:
    """Per question ``[Q]``: the ``1 - eta`` quantile of the warm-up samples' lowest group
    confidences (samples ``0..warmup-1`` of ``out``, complete)."""
    return [
        _quantile([lowest_group_confidence(c, window) for c in row[:warmup]], 1 - eta)
        for row in out.completions
    ]


def vote_confident(out: Generation, bars: list[float], window: int) -> None:
    """Unpruned samples whose lowest group confidence reaches their question's bar vote,
    weighted by it; every unpruned sample gets it as its score."""
    for q, row in enumerate(out.completions):
        for k, completion in enumerate(row):
            if completion is None or completion.finish_reason == "pruned":
                continue
            confidence = out.scores[q][k] = lowest_group_confidence(completion, window)
            if confidence >= bars[q]:
                out.voters[q].append(k)
                out.weights[q].append(confidence)


def _quantile(values: list[float], q: float) -> float:
    """Linear-interpolation quantile, as ``numpy.percentile``."""
    return float(torch.tensor(values, dtype=torch.float64).quantile(q))


def _decode_with_stops(sampler, bars: list[float], window: int) -> None:
    """Decode one step at a time; cut row ``i`` when its window confidence drops below
    ``bars[i]`` (checked once it holds ``window`` tokens)."""
    sums: list[list[float]] = [[0.0] for _ in bars]  # running sums of token confidences
    for step in range(1, sampler.params.max_new_tokens + 1):
        sampler.run(step)
        active = [i for i, c in enumerate(sampler.completions) if c.finish_reason is None]
        if not active:
            return
        stop = set()
        for i in active:
            completion, total = sampler.completions[i], sums[i]
            top = completion.top_logprobs[-1]
            total.append(total[-1] - sum(top) / len(top))
            if step >= window and (total[-1] - total[-1 - window]) / window < bars[i]:
                stop.add(i)
        if stop:
            sampler.keep([i for i in active if i not in stop])
