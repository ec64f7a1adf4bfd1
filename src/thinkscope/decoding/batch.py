"""Per-request decoding configs of a persistent batch whose rows come and go (vLLM's model).

:class:`BatchRows` is the device-independent half of the vLLM processor: it follows vLLM's
batch updates (removed, then added, then moved) and applies :func:`decode_step` to the rows
that carry a config, grouped by config. It never imports vLLM.
"""

from __future__ import annotations

import json
from collections import defaultdict

import torch

from thinkscope.decoding.config import DecodingConfig
from thinkscope.decoding.step import decode_step

#: The ``SamplingParams.extra_args`` key that carries a request's DecodingConfig (as a dict).
EXTRA_ARG = "thinkscope_decoding"


def processor_kwargs(config: DecodingConfig) -> dict:
    """``vllm.SamplingParams`` keyword arguments that hand ``config`` to the vLLM processor:
    vLLM's own temperature/top-p/top-k/min-p at their no-op values (the processor runs first,
    on the raw logits, and applies the config's), the config in ``extra_args``."""
    return dict(
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        min_p=0.0,
        extra_args={EXTRA_ARG: config.model_dump(exclude_none=True)},
    )


def config_from_extra_args(extra_args: dict | None) -> DecodingConfig | None:
    """The request's DecodingConfig, or None when it has none (raises ValueError if invalid)."""
    values = (extra_args or {}).get(EXTRA_ARG)
    if values is None:
        return None
    return values if isinstance(values, DecodingConfig) else DecodingConfig(**values)


class BatchRows:
    """Batch index -> DecodingConfig, kept in step with the persistent batch."""

    def __init__(self) -> None:
        self.rows: dict[int, DecodingConfig] = {}

    def update(self, batch_update) -> None:
        """Apply one vLLM ``BatchUpdate`` (``None``: the batch did not change)."""
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for added in batch_update.added:
            index, params = added[0], added[1]  # (index, params, prompt ids, output ids)
            config = config_from_extra_args(getattr(params, "extra_args", None))
            if config is None:
                self.rows.pop(index, None)  # an added request may replace an old one
            else:
                self.rows[index] = config
        for a, b, direction in batch_update.moved:
            first, second = self.rows.pop(a, None), self.rows.pop(b, None)
            if first is not None:
                self.rows[b] = first
            if getattr(direction, "name", direction) == "SWAP" and second is not None:
                self.rows[a] = second

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` ``[B, V]`` with each configured row replaced by its decoded scores."""
        groups: dict[str, list[int]] = defaultdict(list)
        configs: dict[str, DecodingConfig] = {}
        for index, config in self.rows.items():
            key = json.dumps(config.model_dump(), sort_keys=True)
            groups[key].append(index)
            configs[key] = config
        for key, indices in groups.items():
            index = torch.tensor(sorted(indices), device=logits.device)
            logits[index] = decode_step(logits[index], configs[key]).scores
        return logits
