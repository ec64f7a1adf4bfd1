"""Load any Hugging Face causal LM as an :class:`LM`: model, tokenizer and the probed anatomy."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from thinkscope.core.errors import UserError
from thinkscope.core.progress import progress_enabled
from thinkscope.models.adapter import Anatomy, apply_head, inspect_model, verify_head
from thinkscope.models.bundled import BUNDLED_NAME, converted_gguf
from thinkscope.models.hooks.points import combine, hook, output_tensor
from thinkscope.models.identity import source, state_hash
from thinkscope.models.spec import ModelSpec

__all__ = ["LM", "default_dtype", "load_model", "load_tokenizer", "target_dtype"]


@dataclass
class LM:
    """A causal LM with the parts thinkscope addresses: blocks, final norm, unembedding."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    anatomy: Anatomy = field(repr=False)
    #: The resolved spec it was loaded from (:func:`load_model`); ``None`` for a wrapped model.
    spec: ModelSpec | None = field(default=None, repr=False)
    _state: str | None = field(default=None, init=False, repr=False)

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
    def weights(self) -> str:
        """The identity of the weights (:mod:`thinkscope.models.identity`): the loaded spec's,
        or the hash of a wrapped model's parameters (computed once)."""
        if self.spec is not None and self.spec.weights is not None:
            return self.spec.weights
        if self._state is None:
            self._state = state_hash(self.model)
        return self._state

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

        def keep(_module, _args, output) -> None:
            states.append(output_tensor(output))

        with combine(*(hook(block, keep) for block in self.anatomy.layers)):
            yield states


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmul there is ~250x slower); bf16 on GPUs that have it, else fp16."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def resolve_source(model: str) -> Path | str:
    """What transformers loads for ``model``: a directory (a GGUF file converted on first
    use) or a hub id."""
    kind, path = source(model)
    if kind in ("bundled", "gguf"):
        return converted_gguf(path)
    return path if kind == "dir" else model


def hub_reachable() -> bool:
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
    from transformers.utils import logging

    if not progress_enabled():  # transformers' own bars go by the one switch too
        logging.disable_progress_bar()
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
        if isinstance(source, Path) or not hub_reachable():
            raise
        return load(local_only=False)


def target_device(spec: ModelSpec) -> torch.device:
    """Where ``spec`` puts the model: its ``device``, else cuda when present (and no CPU map)."""
    cuda = torch.cuda.is_available() and spec.device_map != "cpu"
    return torch.device(spec.device or ("cuda" if cuda else "cpu"))


def target_dtype(spec: ModelSpec) -> str:
    """``spec.dtype`` with ``auto`` resolved for its device (see :func:`default_dtype`)."""
    if spec.dtype != "auto":
        return spec.dtype
    return str(default_dtype(target_device(spec))).removeprefix("torch.")


def load_model(spec: ModelSpec | str = BUNDLED_NAME, **options) -> LM:
    """Load ``spec``: a :class:`ModelSpec`, or a model name (``smollm2-135m``, a local
    directory, a ``.gguf`` file or a hub id) with the spec's loading options as keywords
    (``load_model("smollm2-135m", dtype="bfloat16")``; keywords also override a spec's).

    ``dtype``: ``auto`` (default: fp32 on CPU, bf16 or fp16 on CUDA), ``float32``, ``bfloat16``
    or ``float16``. ``device`` puts the whole model on one device (default: cuda when there
    is one); ``device_map`` (e.g. ``"auto"``) spreads it over devices with accelerate instead.
    ``attn_implementation`` (``eager``, ``sdpa``, ``flash_attention_2``), ``revision`` and
    ``trust_remote_code`` go to transformers' ``from_pretrained``. The LM's ``spec`` is the
    resolved spec (dtype used, weights identified); a spec with ``weights`` refuses others.
    """
    if isinstance(options.get("dtype"), torch.dtype):
        options["dtype"] = str(options["dtype"]).removeprefix("torch.")
    spec = ModelSpec.of(spec, **{k: v for k, v in options.items() if v is not None})
    if spec.device is not None and spec.device_map is not None:
        raise UserError("give --device or --device-map, not both")
    spec = spec.resolved()
    target = target_device(spec)
    kwargs = {"dtype": getattr(torch, spec.dtype), "revision": spec.revision}
    kwargs["trust_remote_code"] = spec.trust_remote_code
    if spec.device_map is not None:
        kwargs["device_map"] = spec.device_map
    if spec.attn_implementation is not None:
        kwargs["attn_implementation"] = spec.attn_implementation
    try:
        model, tokenizer = _from_pretrained(resolve_source(spec.model), **kwargs)
    except OSError as err:
        raise UserError(
            f"unknown model {spec.model!r}: not the bundled {BUNDLED_NAME!r}, a local model "
            "directory, a .gguf file, or a Hugging Face model id that could be fetched"
        ) from err
    except ValueError as err:  # an unsupported option, or a config transformers cannot read
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load model {spec.model!r}: {reason}") from err
    commit = getattr(model.config, "_commit_hash", None)
    if spec.weights.startswith("hub:") and commit:  # the commit transformers really loaded
        spec = spec.model_copy(update={"weights": f"hub:{spec.model}@{commit}"})
    placed = model if spec.device_map is not None else model.to(target)
    lm = LM.wrap(placed, tokenizer, name=spec.model)
    lm.spec = spec
    return lm


def load_tokenizer(spec: ModelSpec | str = BUNDLED_NAME, **options):
    """Just the tokenizer of ``spec`` (fast: no weights are loaded): a :class:`ModelSpec` or
    a model name with :func:`load_model`'s keywords (only ``revision`` and
    ``trust_remote_code`` matter)."""
    from transformers import AutoTokenizer

    spec = ModelSpec.of(spec, **{k: v for k, v in options.items() if v is not None})
    source = resolve_source(spec.model)
    kwargs = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, **kwargs)
    except OSError:
        if isinstance(source, Path) or not hub_reachable():
            raise UserError(
                f"unknown model {spec.model!r}: its tokenizer is not available"
            ) from None
        return AutoTokenizer.from_pretrained(source, **kwargs)
