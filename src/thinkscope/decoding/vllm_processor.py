"""The decoding rule as a vLLM logits processor (vLLM's V1 engine interface).

Targets ``vllm.v1.sample.logits_processor.LogitsProcessor`` (``__init__(vllm_config, device,
is_pin_memory)``, ``update_state(BatchUpdate | None)``, ``apply(logits)``,
``is_argmax_invariant()``, ``validate_params(SamplingParams)``) of vLLM 0.31, the version
the ``gpu`` extra pins (``BatchUpdate.added`` holds ``(index, params, prompt ids, output
ids)``); 0.32+ default to the "model runner V2", which has its own interface (run those with
``VLLM_USE_V2_MODEL_RUNNER=0``). vLLM applies custom processors
to the raw logits before its own temperature and top-k/top-p, so a request carries its whole
DecodingConfig in ``extra_args`` and leaves vLLM's own knobs at their no-op values
(:func:`sampling_params` builds such params; lm-eval's vLLM model gets the same keyword
arguments through :mod:`thinkscope.lmeval.vllm_model`). Usage::

    from vllm import LLM
    from thinkscope.decoding import DecodingConfig
    from thinkscope.decoding.vllm_processor import DecodingLogitsProcessor, sampling_params

    llm = LLM(model, logits_processors=[DecodingLogitsProcessor])
    llm.generate(prompts, sampling_params(DecodingConfig(min_p=0.1), max_tokens=512))

Not measured on GPU here: vLLM is CUDA-only and not installed in this environment; the
batch bookkeeping (:class:`~thinkscope.decoding.batch.BatchRows`) is tested on CPU.
"""

from __future__ import annotations

import torch
import vllm
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor

from thinkscope.decoding.batch import (
    EXTRA_ARG,
    BatchRows,
    config_from_extra_args,
    processor_kwargs,
)
from thinkscope.decoding.config import DecodingConfig


class DecodingLogitsProcessor(LogitsProcessor):
    """Applies each request's ``extra_args["thinkscope_decoding"]`` DecodingConfig."""

    @classmethod
    def validate_params(cls, sampling_params: vllm.SamplingParams) -> None:
        config = config_from_extra_args(sampling_params.extra_args)  # ValueError if invalid
        if config is None:
            return
        own = (
            sampling_params.temperature,
            sampling_params.top_p,
            sampling_params.top_k,
            sampling_params.min_p,
        )
        if own[0] != 1.0 or own[1] != 1.0 or own[2] not in (0, -1) or own[3] != 0.0:
            raise ValueError(
                f"with {EXTRA_ARG}, leave vLLM's temperature/top_p/top_k/min_p "
                "at 1/1/0/0: the DecodingConfig sets them"
            )

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
        self.rows = BatchRows()

    def is_argmax_invariant(self) -> bool:
        """False, so vLLM runs it on the raw logits, before its own temperature (it runs
        argmax-invariant processors after); the rule itself always keeps the argmax."""
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        self.rows.update(batch_update)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return self.rows.apply(logits)


def sampling_params(config: DecodingConfig, **kwargs) -> vllm.SamplingParams:
    """vLLM ``SamplingParams`` that hand ``config`` to :class:`DecodingLogitsProcessor`."""
    own = processor_kwargs(config)
    own["extra_args"] = {**kwargs.pop("extra_args", {}), **own["extra_args"]}
    return vllm.SamplingParams(**own, **kwargs)
