"""Length and confidence baselines, from the model's own output distribution ``p_t``.

All use the scoring forward pass's final-layer distribution (not the sampling-processed one):

- ``length``: generated tokens T.
- ``logprob``: mean_t log p_t(token_t).
- ``neg-entropy``: mean_t -H(p_t), nats.
- ``self-certainty`` (Kang et al. 2025): mean_t KL(U || p_t) = -log V - (1/V) sum_j log p_t(j).
- DeepConf (arXiv 2508.15260): token confidence ``C_t = -(1/k) sum_{j<=k} log p_t(j)`` over the
  top k = 20; ``token-conf`` = mean_t C_t; group confidences are the means of C over every
  window of ``window`` consecutive tokens (one group, the whole trace, when T < window);
  ``group-conf-lowest`` = the lowest group, ``bottom10-conf`` = the mean of the lowest 10 %
  (at least one) of groups, ``tail-conf`` = the mean C over the last ``window`` tokens.
"""

from __future__ import annotations

import math

import torch

from thinkscope.metrics.registry import Metric, Needs, Result, TraceLens, register

WINDOW = 2048


def _mean(values: torch.Tensor) -> float:
    return float(values.double().mean()) if values.numel() else math.nan


def token_confidence(top_logprobs: torch.Tensor) -> torch.Tensor:
    """DeepConf ``C_t`` ``[T]`` from the top-k log-probs ``[T, k]``."""
    return -top_logprobs.double().mean(-1)


def self_certainty(mean_logprob: torch.Tensor, vocab: int) -> torch.Tensor:
    """Self-certainty ``KL(U || p_t)`` ``[T]`` from each distribution's mean log-prob over
    the vocabulary ``(1/V) sum_j log p_t(j)`` ``[T]``: ``-log V - mean_logprob``."""
    return -math.log(vocab) - mean_logprob.double()


def group_confidences(conf: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Means of ``conf`` ``[T]`` over every window of ``window`` tokens ``[max(1, T-window+1)]``."""
    if len(conf) < window:
        return conf.double().mean().reshape(1)
    sums = torch.cat([torch.zeros(1, dtype=torch.float64), conf.double().cumsum(0)])
    return (sums[window:] - sums[:-window]) / window


def _lens_needs(**_) -> Needs:
    return Needs(lens=True)


def _conf(view: TraceLens) -> torch.Tensor:
    return token_confidence(view.final.top_logprobs)


def _length(view: TraceLens) -> Result:
    return Result(float(view.n_tokens))


def _logprob(view: TraceLens) -> Result:
    lp = view.final.token_logprob
    return Result(_mean(lp), {"token_logprob": lp})


def _neg_entropy(view: TraceLens) -> Result:
    ent = view.final.entropy
    return Result(-_mean(ent), {"entropy": ent})


def _self_certainty(view: TraceLens) -> Result:
    per_token = self_certainty(view.final.mean_logprob, view.vocab)
    return Result(_mean(per_token), {"self_certainty": per_token})


def _token_conf(view: TraceLens) -> Result:
    conf = _conf(view)
    return Result(_mean(conf), {"token_conf": conf})


def _lowest(view: TraceLens, window: int) -> Result:
    conf = _conf(view)
    value = float(group_confidences(conf, window).min()) if len(conf) else math.nan
    return Result(value, {"token_conf": conf})


def _bottom10(view: TraceLens, window: int) -> Result:
    conf = _conf(view)
    if not len(conf):
        return Result(math.nan, {"token_conf": conf})
    groups = group_confidences(conf, window)
    lowest = groups.sort().values[: max(1, int(len(groups) * 0.1))]
    return Result(float(lowest.mean()), {"token_conf": conf})


def _tail(view: TraceLens, window: int) -> Result:
    conf = _conf(view)
    return Result(_mean(conf[-window:]), {"token_conf": conf})


register(Metric("length", _length, lambda: Needs(), doc="generated tokens"))
register(
    Metric(
        "logprob",
        _logprob,
        _lens_needs,
        arrays={"token_logprob": ()},
        doc="mean log-prob of the generated tokens",
    )
)
register(
    Metric(
        "neg-entropy",
        _neg_entropy,
        _lens_needs,
        arrays={"entropy": ()},
        doc="minus the mean entropy of the output distribution (nats)",
    )
)
register(
    Metric(
        "self-certainty",
        _self_certainty,
        _lens_needs,
        arrays={"self_certainty": ()},
        doc="mean KL(uniform || p) (Kang et al. 2025)",
    )
)
register(
    Metric(
        "token-conf",
        _token_conf,
        _lens_needs,
        arrays={"token_conf": ()},
        doc="DeepConf mean token confidence",
    )
)
for _name, _fn, _doc in (
    ("group-conf-lowest", _lowest, "DeepConf lowest group confidence"),
    ("bottom10-conf", _bottom10, "DeepConf bottom-10% group confidence"),
    ("tail-conf", _tail, "DeepConf tail confidence"),
):
    register(Metric(_name, _fn, _lens_needs, {"window": WINDOW}, {"token_conf": ()}, doc=_doc))
