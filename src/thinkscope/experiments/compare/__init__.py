"""Base versus tuned on the same problems and seeds: ``thinkscope compare``."""

from thinkscope.experiments.compare.core import CompareConfig, CompareResult, compare_models
from thinkscope.experiments.compare.stats import McNemar, mcnemar_paired, per_question

__all__ = [
    "CompareConfig",
    "CompareResult",
    "McNemar",
    "compare_models",
    "mcnemar_paired",
    "per_question",
]
