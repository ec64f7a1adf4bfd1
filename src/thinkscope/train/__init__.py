"""LoRA SFT on trace datasets (TRL + PEFT) and merging: ``thinkscope train`` / ``merge``.

Needs the ``train`` extra; TRL and PEFT are imported only when training or merging starts.
"""

from thinkscope.train.data import load_sft_rows, resolve_dataset
from thinkscope.train.merge import merge_adapter
from thinkscope.train.trainer import TrainConfig, TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "load_sft_rows",
    "merge_adapter",
    "resolve_dataset",
    "train",
]
