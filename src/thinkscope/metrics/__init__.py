"""Per-token and per-trace metrics, registered by name (``thinkscope score --metrics``).

Depth: ``dtr``, ``mean-settling-depth``, ``median-settling-depth``, ``topk-agreement``,
``jsd-profile``. Baselines: ``length``, ``logprob``, ``neg-entropy``, ``self-certainty``.
DeepConf: ``token-conf``, ``group-conf-lowest``, ``bottom10-conf``, ``tail-conf``.
REV (seed 001): ``ae``, ``ape``, ``apl``, ``cud``, ``fl``, ``sib``, ``rev``, ``rev-robust``.
Groups: ``confidence`` (logprob, neg-entropy, self-certainty and the DeepConf four), ``rev``,
``all`` (every metric but the REV ones, whose ablation passes are costly).
"""

from importlib import import_module

_EXPORTS = {
    **dict.fromkeys(["deep_thinking_ratio", "settling_depth"], "thinkscope.metrics.dtr"),
    **dict.fromkeys(["lens_views", "measure"], "thinkscope.metrics.forward_pass"),
    **dict.fromkeys(
        [
            "GROUPS",
            "REGISTRY",
            "Metric",
            "MetricSpec",
            "Needs",
            "Result",
            "TraceLens",
            "parse_metrics",
            "register",
            "spec",
        ],
        "thinkscope.metrics.registry",
    ),
}


def __getattr__(name: str):
    """Names load on first use, after the built-in metrics have registered, so that the light
    :mod:`thinkscope.metrics.dtr_spec` imports no torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for part in ("confidence", "dtr", "layers", "rev"):
        import_module(f"{__name__}.{part}")
    return getattr(import_module(_EXPORTS[name]), name)


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
