"""Load any Hugging Face causal LM as an :class:`LM`: model, tokenizer and the probed anatomy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from thinkscope.errors import UserError
from thinkscope.models.adapter import Anatomy, apply_head, block_output, inspect_model, verify_head
from thinkscope.models.bundled import BUNDLED_NAME, bundled_gguf, converted_gguf

__all__ = ["LM", "load_model", "load_tokenizer", "BUNDLED_NAME", "default_dtype"]


@dataclass
class LM:
    """A causal LM with the parts thinkscope addresses: blocks, final norm, unembedding."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    anatomy: Anatomy = field(repr=False)

    @classmethod
    def wrap(cls, model: torch.nn.Module, tokenizer, name: str = "model") -> LM:
        """Probe and verify an already-loaded model."""
        model.eval()
        anatomy = inspect_model(model)
        verify_head(model, anatomy)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model=model, tokenizer=tokenizer, name=name, anatomy=anatomy)

    @property
    def n_layers(self) -> int:
        return len(self.anatomy.layers)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def vocab_size(self) -> int:
        return self.anatomy.unembed.weight.shape[0]

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def eos_token_ids(self) -> set[int]:
        """Every token id that ends a completion (tokenizer and generation config)."""
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return {i for i in ids if i is not None}

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., V]`` of pre-final-norm residual states ``[..., d]``: the logit lens."""
        return apply_head(self.anatomy, hidden)

    @contextlib.contextmanager
    def record_blocks(self) -> Iterator[list[torch.Tensor]]:
        """Record each decoder block's output ``[B, T, d]`` (layers 1..L, pre-final-norm).

        >>> with lm.record_blocks() as states:
        ...     lm.model(input_ids=ids)
        >>> len(states) == lm.n_layers
        """
        states: list[torch.Tensor] = []
        handles = [
            block.register_forward_hook(lambda _m, _i, out: states.append(block_output(out)))
            for block in self.anatomy.layers
        ]
        try:
            yield states
        finally:
            for handle in handles:
                handle.remove()


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmul there is ~250x slower); bf16 on GPUs that have it, else fp16."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _resolve(spec: str) -> Path | str:
    if spec == BUNDLED_NAME:
        return converted_gguf(bundled_gguf())
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        return converted_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model directory {path} has no config.json")
        return path
    if path.exists() or spec.startswith((".", "/", "~")):
        raise UserError(f"model path {spec!r} is neither a model directory nor a .gguf file")
    return spec  # a Hugging Face model id


def _hub_reachable() -> bool:
    """Whether the Hugging Face hub answers DNS, so that offline machines fail fast."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _from_pretrained(source: Path | str, torch_dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(local_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, local_files_only=local_only
        )
        return model, tokenizer

    try:
        return load(local_only=True)
    except OSError:
        if isinstance(source, Path) or not _hub_reachable():
            raise
        return load(local_only=False)


def load_model(spec: str = BUNDLED_NAME, device: str | None = None, dtype: str | None = None) -> LM:
    """Load ``spec``: ``smollm2-135m`` (bundled), a local directory, a ``.gguf`` file or a hub id.

    fp32 on CPU; bf16 (or fp16) on CUDA unless ``dtype`` says otherwise.
    """
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch_dtype = getattr(torch, dtype) if dtype else default_dtype(target)
    source = _resolve(spec)
    try:
        model, tokenizer = _from_pretrained(source, torch_dtype)
    except (OSError, ValueError) as err:
        raise UserError(
            f"unknown model {spec!r}: not the bundled {BUNDLED_NAME!r}, a local model directory, "
            "a .gguf file, or a Hugging Face model id that could be fetched"
        ) from err
    return LM.wrap(model.to(target), tokenizer, name=spec)


def load_tokenizer(spec: str = BUNDLED_NAME):
    """Just the tokenizer of ``spec`` (fast: no weights are loaded)."""
    from transformers import AutoTokenizer

    source = _resolve(spec)
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except OSError:
        if isinstance(source, Path) or not _hub_reachable():
            raise UserError(f"unknown model {spec!r}: its tokenizer is not available") from None
        return AutoTokenizer.from_pretrained(source)
