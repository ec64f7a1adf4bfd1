"""SFT datasets from run folders (verified, DTR-filtered) and from reference solutions.

>>> from thinkscope.datasets import DatasetFilters, build_dataset, reference_dataset
>>> build_dataset("runs/traces", "data/sft", DatasetFilters(require_correct=True, min_dtr=0.2))
"""

from thinkscope.datasets.builder import DatasetResult, build_dataset
from thinkscope.datasets.export import FORMATS
from thinkscope.datasets.filters import DatasetFilters, FilterStep, has_answer_tag
from thinkscope.datasets.reference import reference_dataset

__all__ = [
    "FORMATS",
    "DatasetFilters",
    "DatasetResult",
    "FilterStep",
    "build_dataset",
    "has_answer_tag",
    "reference_dataset",
]
