"""Load any Hugging Face causal LM as an :class:`LM`: model, tokenizer and the probed anatomy."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from thinkscope.core.errors import UserError
from thinkscope.models.adapter import Anatomy, apply_head, block_output, inspect_model, verify_head
from thinkscope.models.bundled import BUNDLED_NAME, bundled_gguf, converted_gguf

__all__ = ["LM", "load_model", "load_tokenizer", "default_dtype"]


@dataclass
class LM:
    """A causal LM with the parts thinkscope addresses: blocks, final norm, unembedding."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    anatomy: Anatomy = field(repr=False)

    @classmethod
    def wrap(cls, model: torch.nn.Module, tokenizer, name: str = "model") -> LM:
        """Probe and verify an already-loaded model. A tokenizer without a pad token gets
        EOS as its pad token on a copy: the caller's tokenizer is left as it was."""
        model.eval()
        anatomy = inspect_model(model)
        verify_head(model, anatomy)
        if tokenizer.pad_token_id is None:
            tokenizer = copy.deepcopy(tokenizer)
            tokenizer.pad_token = tokenizer.eos_token
        return cls(model=model, tokenizer=tokenizer, name=name, anatomy=anatomy)

    @property
    def n_layers(self) -> int:
        return len(self.anatomy.layers)

    @property
    def device(self) -> torch.device:
        """Where input ids go: the input embedding's device, also under ``device_map="auto"``
        (layers spread over devices, or offloaded weights whose hook names the device)."""
        embed = self.model.get_input_embeddings()
        hook = getattr(embed, "_hf_hook", None)
        if getattr(hook, "execution_device", None) is not None:
            return torch.device(hook.execution_device)
        return embed.weight.device

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


def _from_pretrained(source: Path | str, **options):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shared = {k: options.pop(k) for k in ("revision", "trust_remote_code")}

    def load(local_only: bool):
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only, **shared)
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=local_only, **shared, **options
        )
        return model, tokenizer

    try:
        return load(local_only=True)
    except OSError:
        if isinstance(source, Path) or not _hub_reachable():
            raise
        return load(local_only=False)


DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def _dtype(dtype: str | torch.dtype | None, target: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return default_dtype(target)
    if dtype not in DTYPES:
        raise UserError(f"dtype must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def load_model(
    spec: str = BUNDLED_NAME,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | dict | None = None,
    attn_implementation: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> LM:
    """Load ``spec``: ``smollm2-135m`` (bundled), a local directory, a ``.gguf`` file or a hub id.

    ``dtype``: ``auto`` (default: fp32 on CPU, bf16 or fp16 on CUDA), ``float32``, ``bfloat16``
    or ``float16``. ``device`` puts the whole model on one device (default: cuda when there
    is one); ``device_map`` (e.g. ``"auto"``) spreads it over devices with accelerate instead.
    ``attn_implementation`` (``eager``, ``sdpa``, ``flash_attention_2``), ``revision`` and
    ``trust_remote_code`` go to transformers' ``from_pretrained``.
    """
    if device is not None and device_map is not None:
        raise UserError("give --device or --device-map, not both")
    cuda = torch.cuda.is_available()
    target = torch.device(device or ("cuda" if cuda and device_map != "cpu" else "cpu"))
    options = {"dtype": _dtype(dtype, target), "revision": revision}
    options["trust_remote_code"] = trust_remote_code
    if device_map is not None:
        options["device_map"] = device_map
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    source = _resolve(spec)
    try:
        model, tokenizer = _from_pretrained(source, **options)
    except OSError as err:
        raise UserError(
            f"unknown model {spec!r}: not the bundled {BUNDLED_NAME!r}, a local model directory, "
            "a .gguf file, or a Hugging Face model id that could be fetched"
        ) from err
    except ValueError as err:  # an unsupported option, or a config transformers cannot read
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load model {spec!r}: {reason}") from err
    return LM.wrap(model if device_map is not None else model.to(target), tokenizer, name=spec)


def load_tokenizer(
    spec: str = BUNDLED_NAME, revision: str | None = None, trust_remote_code: bool = False, **_
):
    """Just the tokenizer of ``spec`` (fast: no weights are loaded); ``revision`` and
    ``trust_remote_code`` as for :func:`load_model`, whose other options it accepts and
    ignores, so ``load_tokenizer(spec, **loading)`` works."""
    from transformers import AutoTokenizer

    source = _resolve(spec)
    options = {"revision": revision, "trust_remote_code": trust_remote_code}
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, **options)
    except OSError:
        if isinstance(source, Path) or not _hub_reachable():
            raise UserError(f"unknown model {spec!r}: its tokenizer is not available") from None
        return AutoTokenizer.from_pretrained(source, **options)
