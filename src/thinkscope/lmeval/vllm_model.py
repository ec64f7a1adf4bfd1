"""``thinkscope-vllm``: lm-eval's own ``vllm`` model with thinkscope's correctness-first
decoding knobs, for ``backend=vllm`` in the thinkscope model's ``model_args``.

Written against lm-eval 0.4's ``lm_eval/models/vllm_causallms.py``: its ``VLLM.__init__``
hands every keyword it does not name to ``vllm.LLM`` (so ``logits_processors`` reaches the
engine), and ``generate_until`` builds one ``SamplingParams(max_tokens=..., stop=...,
**kwargs)`` per request from ``modify_gen_kwargs``. The subclass registers thinkscope's
:class:`~thinkscope.decoding.vllm_processor.DecodingLogitsProcessor` with the engine and, in
``modify_gen_kwargs``, replaces the task's sampling by the model_args'
:class:`~thinkscope.decoding.DecodingConfig` (:func:`~thinkscope.lmeval.backend.with_decoding`),
which the processor reads from ``extra_args``: as on the ``hf`` backend, knobs set in
model_args decide sampling. Importing this module imports vLLM.
"""

from __future__ import annotations

from lm_eval.api.registry import register_model
from lm_eval.models.vllm_causallms import VLLM

from thinkscope.decoding.vllm_processor import DecodingLogitsProcessor
from thinkscope.lmeval.backend import VLLM_MODEL, with_decoding
from thinkscope.lmeval.model import decoding_from_args


@register_model(VLLM_MODEL)
class ThinkscopeVLLM(VLLM):
    """lm-eval's ``VLLM`` whose requests carry a DecodingConfig to thinkscope's processor."""

    def __init__(self, pretrained: str, **kwargs) -> None:
        self.decoding = decoding_from_args(kwargs)
        processors = [DecodingLogitsProcessor, *kwargs.pop("logits_processors", [])]
        super().__init__(pretrained, logits_processors=processors, **kwargs)

    def modify_gen_kwargs(self, gen_kwargs: dict, eos=None, default_max_gen_toks: int = 256):
        kwargs, until, max_gen_toks = VLLM.modify_gen_kwargs(
            gen_kwargs, eos=eos, default_max_gen_toks=default_max_gen_toks
        )
        return with_decoding(kwargs, self.decoding), until, max_gen_toks
