"""Traces to training: SFT datasets from run folders (verified, DTR-filtered) and from
reference solutions, LoRA SFT on them (TRL + PEFT), and merging the adapter.

Training needs the ``train`` extra; TRL and PEFT are imported only when training starts.

>>> from thinkscope.sft import DatasetFilters, build_dataset, train, TrainConfig
>>> build_dataset("runs/traces", "data/sft", DatasetFilters(require_correct=True, min_dtr=0.2))
"""

from thinkscope.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        **dict.fromkeys(["DatasetResult", "build_dataset"], "thinkscope.sft.builder"),
        "FORMATS": "thinkscope.sft.export",
        "DatasetFilters": "thinkscope.sft.filter_spec",
        **dict.fromkeys(["FilterStep", "has_answer_tag"], "thinkscope.sft.filters"),
        "merge_adapter": "thinkscope.sft.merge",
        "reference_dataset": "thinkscope.sft.reference",
        **dict.fromkeys(["load_sft_rows", "resolve_dataset"], "thinkscope.sft.train_data"),
        **dict.fromkeys(["TrainConfig", "TrainResult", "train"], "thinkscope.sft.trainer"),
    },
)
