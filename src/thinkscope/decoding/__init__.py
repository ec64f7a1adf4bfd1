"""Correctness-first decoding: one config, one step function, HF and vLLM processors."""

from thinkscope.decoding.config import DecodingConfig
from thinkscope.decoding.processor import DecodingProcessor
from thinkscope.decoding.step import DecodingStep, decode_step

__all__ = ["DecodingConfig", "DecodingProcessor", "DecodingStep", "decode_step"]
