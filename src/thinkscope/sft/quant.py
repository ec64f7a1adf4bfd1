"""QLoRA: the base model loaded in 4-bit NF4 through bitsandbytes (CUDA only), LoRA on top.

``load_in_4bit`` is declared once here; :class:`~thinkscope.sft.trainer.TrainConfig` composes
it and ``train --load-in-4bit`` comes from it. :func:`check_4bit` refuses in one line, before
anything loads, on a machine without CUDA or without the ``bitsandbytes`` package."""

from __future__ import annotations

from pydantic import Field

from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec


class QuantSpec(Spec):
    """How the base model's weights are held while its adapter trains."""

    load_in_4bit: bool = Field(
        False,
        description="QLoRA: load the base model in 4-bit NF4 (bitsandbytes, CUDA only) and "
        "train LoRA on it in bf16.",
    )


def check_4bit() -> None:
    """Raise a one-line :class:`UserError` unless 4-bit loading can work here."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise UserError("--load-in-4bit needs a CUDA GPU (bitsandbytes' 4-bit kernels): drop it")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("--load-in-4bit needs the bitsandbytes package: pip install bitsandbytes")


def load_4bit(spec):
    """The :class:`~thinkscope.models.LM` of ``spec`` (a ModelSpec) with its linear layers in
    4-bit NF4 (double quantization, bf16 compute) on the first CUDA device."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    from thinkscope.models import LM
    from thinkscope.models.lm import resolve_source

    check_4bit()
    source, shared = resolve_source(spec.model), {"revision": spec.revision}
    shared["trust_remote_code"] = spec.trust_remote_code
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, quantization_config=quantization, device_map={"": 0}, dtype=torch.bfloat16, **shared
    )
    lm = LM.wrap(model, AutoTokenizer.from_pretrained(source, **shared), name=spec.model)
    lm.spec = spec
    return lm
