"""Correctness-first decoding: one config, one step function, HF and vLLM processors.

Names load lazily, so the CLI's option block does not import torch.
"""

from importlib import import_module

_EXPORTS = {
    "DecodingConfig": "thinkscope.decoding.config",
    "DecodingProcessor": "thinkscope.decoding.processor",
    "DecodingStep": "thinkscope.decoding.step",
    "decode_step": "thinkscope.decoding.step",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'thinkscope.decoding' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
