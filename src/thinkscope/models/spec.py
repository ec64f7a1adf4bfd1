"""Which model, and how to load it: every loading option, declared once.

:class:`ModelSpec` is a base of every config that names a model (``GenerateConfig``,
``SelectConfig``, ...), so ``config.yaml`` holds the loading options flat beside the others,
and the CLI's options come from these fields (:func:`thinkscope.cli.options.spec_options`). It
is picklable: Ray workers and the vLLM engine get the spec, not a loaded model.
:class:`EngineSpec` holds how vLLM's engine places the model (tensor parallelism, GPU memory,
context length); only the commands that can generate on vLLM compose it. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from typing_extensions import Self

from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec

BUNDLED = "smollm2-135m"
DTYPES = ("auto", "float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}

#: HF ``attn_implementation`` -> vLLM ``attention_backend`` (vLLM has no eager/SDPA kernels for
#: CUDA models; those two leave vLLM to choose and apply to the HF model that scores).
VLLM_ATTENTION = {"flash_attention_2": "FLASH_ATTN"}


class LoadingSpec(Spec):
    """How to load a model: every loading option but the model itself (``compare`` applies
    them to both of its models)."""

    revision: str | None = Field(None, description="Hub branch, tag or commit of the model.")
    dtype: str = Field(
        "auto", description="auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16 or float16."
    )
    device: str | None = Field(
        None, description="cpu, cuda or cuda:N for the whole model (default: cuda if present)."
    )
    device_map: str | None = Field(
        None, description="Spread the model over devices with accelerate, e.g. auto."
    )
    attn_implementation: str | None = Field(
        None, description="eager, sdpa or flash_attention_2 (default: the model's)."
    )
    trust_remote_code: bool = Field(
        False, description="Run the model repository's own code (hub models)."
    )

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        value = _ALIASES.get(value, value)
        if value not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {value!r}")
        return value

    @property
    def vllm_places(self) -> bool:
        """Can vLLM place the model as asked (no device but ``cuda``, no map but ``auto``)?"""
        return self.device in (None, "cuda") and self.device_map in (None, "auto")

    def vllm_args(self) -> dict:
        """Keyword arguments of ``vllm.LLM`` for these options (vLLM 0.31 ``EngineArgs``).

        ``dtype``, ``revision`` (model and tokenizer) and ``trust_remote_code`` map directly;
        ``flash_attention_2`` becomes ``attention_backend="FLASH_ATTN"``. vLLM places the model
        on the visible CUDA devices itself (``CUDA_VISIBLE_DEVICES``; one GPU per Ray worker),
        so a device other than ``cuda`` or a device map is a :class:`UserError`.
        """
        if not self.vllm_places:
            raise UserError(
                "the vllm backend places the model on the visible GPUs itself: drop "
                "--device/--device-map (choose GPUs with CUDA_VISIBLE_DEVICES) or use --backend hf"
            )
        args = {"dtype": self.dtype, "trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            args.update(revision=self.revision, tokenizer_revision=self.revision)
        if self.attn_implementation in VLLM_ATTENTION:
            args["attention_backend"] = VLLM_ATTENTION[self.attn_implementation]
        return args


#: vLLM's share of each GPU's memory where the HF model that scores shares the GPU
#: (``think-at-n``); alone on the GPU it takes :class:`EngineSpec`'s default.
VLLM_SHARED_MEMORY = 0.6


class EngineSpec(Spec):
    """How vLLM's engine places the model: the ``vllm`` backend's options (``--backend hf``
    refuses them). vLLM takes them as ``vllm.LLM`` (``EngineArgs``) keywords of the same names."""

    tensor_parallel_size: int = Field(
        1, ge=1, description="vLLM: GPUs to split the model over (tensor parallel)."
    )
    gpu_memory_utilization: float = Field(
        0.85,
        gt=0,
        le=1,
        description="vLLM: share of each GPU's memory for weights, activations and KV cache.",
    )
    max_model_len: int | None = Field(
        None,
        ge=1,
        description="vLLM: longest prompt + completion in tokens (default: the model's).",
    )

    @classmethod
    def of(cls, source: Any = None) -> EngineSpec:
        """The engine options in ``source`` (any config that composes this spec, or a mapping);
        those it lacks take their defaults."""
        values = source if isinstance(source, Mapping) else vars(source or cls())
        return cls.parse(**{k: v for k, v in values.items() if k in cls.model_fields})

    @staticmethod
    def given(config: Any) -> list[str]:
        """The engine options ``config`` sets to other than its own defaults, as flags."""
        fields = getattr(type(config), "model_fields", {})
        return [
            f"--{name.replace('_', '-')}"
            for name in EngineSpec.model_fields
            if name in fields and getattr(config, name) != fields[name].default
        ]

    def vllm_args(self) -> dict:
        """Keyword arguments of ``vllm.LLM`` (vLLM 0.31: ``tensor_parallel_size``,
        ``gpu_memory_utilization`` and, when set, ``max_model_len``, an ``EngineArgs`` field)."""
        return self.model_dump(exclude_none=True)


class _Named(Spec):
    model: str = Field(
        BUNDLED, description=f"{BUNDLED}, a model directory, a .gguf file or a hub id."
    )

    @field_validator("model")
    @classmethod
    def _absolute(cls, model: str | None) -> str | None:
        """A local model (directory or .gguf file) as an absolute path, so that a run's config
        names the same model from any directory (``None``: the run's own, filled in later)."""
        if model is None or model == BUNDLED or not Path(model).expanduser().exists():
            return model
        return str(Path(model).expanduser().resolve())


class ModelSpec(LoadingSpec, _Named):  # fields in this order: model, the options, weights
    """A model and its loading options. ``weights`` is not an option: it is the identity of
    the weights (:mod:`thinkscope.models.identity`), filled in when the spec is resolved; a
    spec that carries one refuses to load other weights."""

    weights: str | None = Field(
        None,
        description="Identity of the weights (recorded, not an option).",
        json_schema_extra={"cli": False},
    )

    @classmethod
    def of(cls, source: Any = None, **changes) -> ModelSpec:
        """The model spec in ``source``: a ModelSpec, any config that inherits it (its model
        fields only), a mapping of its fields, or a model name (``None``: the bundled model)."""
        if isinstance(source, str):
            values: Mapping = {"model": source}
        elif isinstance(source, Spec):
            values = {n: getattr(source, n) for n in cls.model_fields if hasattr(source, n)}
        else:
            values = dict(source or {})
        values = {k: v for k, v in values.items() if k in cls.model_fields}
        return cls.parse(**{**values, **changes})

    def loading(self) -> dict:
        """The options this spec sets (every field but ``model`` and ``weights``)."""
        skip = {"model", "weights"}
        return {k: v for k, v in self.model_dump().items() if k not in skip}

    def matches(self, recorded: Mapping) -> bool:
        """Whether a recorded (resolved) spec is one this spec asks for: every option equal,
        except that ``auto`` accepts any dtype and no ``weights`` any weights."""
        mine = ModelSpec.of(self).model_dump()
        free = {"dtype": "auto", "weights": None}
        return all(recorded.get(k) == v for k, v in mine.items() if free.get(k, ...) != v)

    def resolved(self, lm=None) -> Self:
        """This spec with ``dtype`` resolved (``auto``: fp32 on CPU, bf16 or fp16 on CUDA) and
        ``weights`` identified, from the files or from ``lm``, the model already loaded;
        raises :class:`UserError` when the spec records other weights than those found."""
        if lm is not None:
            dtype, found = str(lm.dtype).removeprefix("torch."), lm.weights
        else:
            from thinkscope.models.identity import identify
            from thinkscope.models.lm import target_dtype

            dtype, found = target_dtype(self), identify(self)
        if self.weights is not None and self.weights != found:
            raise UserError(
                f"the weights of {self.model!r} changed: {self.weights} was recorded, "
                f"{found} is there now; restore the original weights to reproduce"
            )
        return self.model_copy(update={"dtype": dtype, "weights": found})


__all__ = [
    "BUNDLED",
    "DTYPES",
    "EngineSpec",
    "LoadingSpec",
    "ModelSpec",
    "VLLM_ATTENTION",
    "VLLM_SHARED_MEMORY",
]
