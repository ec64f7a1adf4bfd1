"""Per-token and per-trace metrics, registered by name (``thinkscope score --metrics``).

Depth: ``dtr``, ``mean-settling-depth``, ``median-settling-depth``, ``topk-agreement``,
``jsd-profile``. Baselines: ``length``, ``logprob``, ``neg-entropy``, ``self-certainty``.
DeepConf: ``token-conf``, ``group-conf-lowest``, ``bottom10-conf``, ``tail-conf``.
REV (seed 001): ``ae``, ``ape``, ``apl``, ``cud``, ``fl``, ``sib``, ``rev``, ``rev-robust``.
Groups: ``confidence`` (logprob, neg-entropy, self-certainty and the DeepConf four), ``rev``,
``all`` (every metric but the REV ones, whose ablation passes are costly).
"""

from thinkscope.metrics import confidence, dtr, layers, rev  # noqa: F401  (registers the metrics)
from thinkscope.metrics.dtr import deep_thinking_ratio, settling_depth
from thinkscope.metrics.measure import lens_views, measure
from thinkscope.metrics.registry import (
    GROUPS,
    REGISTRY,
    Metric,
    MetricSpec,
    Needs,
    Result,
    TraceLens,
    parse_metrics,
    register,
    spec,
)

__all__ = [
    "GROUPS",
    "REGISTRY",
    "Metric",
    "MetricSpec",
    "Needs",
    "Result",
    "TraceLens",
    "deep_thinking_ratio",
    "lens_views",
    "measure",
    "parse_metrics",
    "register",
    "settling_depth",
    "spec",
]
