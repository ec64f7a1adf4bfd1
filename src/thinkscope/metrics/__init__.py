"""Per-token and per-trace metrics, registered by name (``thinkscope score --metrics``).

Depth: ``dtr``, ``mean-settling-depth``, ``median-settling-depth``, ``topk-agreement``,
``jsd-profile``. Baselines: ``length``, ``logprob``, ``neg-entropy``, ``self-certainty``.
DeepConf: ``token-conf``, ``group-conf-lowest``, ``bottom10-conf``, ``tail-conf``.
REV (seed 001): ``ae``, ``ape``, ``apl``, ``cud``, ``fl``, ``sib``, ``rev``, ``rev-robust``.
Groups: ``confidence`` (logprob, neg-entropy, self-certainty and the DeepConf four), ``rev``,
``all`` (every metric but the REV ones, whose ablation passes are costly).
"""

from importlib import import_module

from thinkscope.core.lazy import lazy_exports

_REGISTRY_NAMES = ("GROUPS", "REGISTRY", "Metric", "MetricSpec", "Needs", "Result", "TraceLens")
_export, __all__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["deep_thinking_ratio", "settling_depth"], "thinkscope.metrics.dtr"),
        **dict.fromkeys(["lens_views", "measure"], "thinkscope.metrics.forward_pass"),
        **dict.fromkeys(
            [*_REGISTRY_NAMES, "check_applicable", "parse_metrics", "register", "spec"],
            "thinkscope.metrics.registry",
        ),
    },
)


def __getattr__(name: str):
    """Names load on first use, after the built-in metrics have registered, so that the light
    :mod:`thinkscope.metrics.dtr_spec` imports no torch."""
    if name in __all__:
        for part in ("confidence", "dtr", "layers", "rev"):
            import_module(f"{__name__}.{part}")
    return _export(name)
