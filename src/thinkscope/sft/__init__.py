"""Traces to training: SFT datasets from run folders (verified, DTR-filtered) and from
reference solutions, LoRA SFT on them (TRL + PEFT), and merging the adapter.

Training needs the ``train`` extra; TRL and PEFT are imported only when training starts.

>>> from thinkscope.sft import DatasetFilters, build_dataset, train, TrainConfig
>>> build_dataset("runs/traces", "data/sft", DatasetFilters(require_correct=True, min_dtr=0.2))
"""

from thinkscope.sft.builder import DatasetResult, build_dataset
from thinkscope.sft.export import FORMATS
from thinkscope.sft.filters import DatasetFilters, FilterStep, has_answer_tag
from thinkscope.sft.merge import merge_adapter
from thinkscope.sft.reference import reference_dataset
from thinkscope.sft.train_data import load_sft_rows, resolve_dataset
from thinkscope.sft.trainer import TrainConfig, TrainResult, train

__all__ = [
    "FORMATS",
    "DatasetFilters",
    "DatasetResult",
    "FilterStep",
    "TrainConfig",
    "TrainResult",
    "build_dataset",
    "has_answer_tag",
    "load_sft_rows",
    "merge_adapter",
    "reference_dataset",
    "resolve_dataset",
    "train",
]
