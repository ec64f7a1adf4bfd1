"""A :class:`DecodingConfig` as a ``transformers.LogitsProcessor``."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from thinkscope.decoding.config import DecodingConfig
from thinkscope.decoding.step import decode_step


class DecodingProcessor(LogitsProcessor):
    """``(input_ids [B, S], scores [B, V]) -> scores [B, V]``: scaled, removed tokens at -inf."""

    def __init__(self, config: DecodingConfig) -> None:
        self.config = config

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return decode_step(scores, self.config).scores
