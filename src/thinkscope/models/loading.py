"""How to load a model: one picklable object for the driver, Ray workers and the vLLM engine.

:class:`Loading` holds :func:`~thinkscope.models.load_model`'s options. It is a read-only
mapping of the options that differ from the defaults, so ``load_model(spec, **loading)`` works
wherever a plain dict of them did; :meth:`Loading.vllm_args` translates it for ``vllm.LLM``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

from thinkscope.core.errors import UserError

#: HF ``attn_implementation`` -> vLLM ``attention_backend`` (vLLM has no eager/SDPA kernels for
#: CUDA models; those two leave vLLM to choose and apply to the HF model that scores).
VLLM_ATTENTION = {"flash_attention_2": "FLASH_ATTN"}


@dataclass(frozen=True)
class Loading(Mapping):
    """``load_model`` options; ``None``/``False`` means the default (``dtype`` ``auto``)."""

    dtype: str | None = None
    device: str | None = None
    device_map: str | None = None
    attn_implementation: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False

    @classmethod
    def of(cls, options: Mapping | None) -> Loading:
        """``options`` (a :class:`Loading`, a dict of load_model keywords, or ``None``)."""
        if isinstance(options, Loading):
            return options
        unknown = set(options or {}) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown loading options: {', '.join(sorted(unknown))}")
        return cls(**(options or {}))

    def replace(self, **changes) -> Loading:
        return dataclasses.replace(self, **changes)

    def _set(self) -> dict:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) not in (None, False)
        }

    def __getitem__(self, key: str):
        return self._set()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())

    def vllm_args(self) -> dict:
        """Keyword arguments of ``vllm.LLM`` for these options (vLLM 0.31 ``EngineArgs``).

        ``dtype``, ``revision`` (model and tokenizer) and ``trust_remote_code`` map directly;
        ``flash_attention_2`` becomes ``attention_backend="FLASH_ATTN"``. vLLM places the model
        on the visible CUDA devices itself (``CUDA_VISIBLE_DEVICES``; one GPU per Ray worker),
        so a device other than ``cuda`` or a device map is a :class:`UserError`.
        """
        if self.device not in (None, "cuda") or self.device_map not in (None, "auto"):
            raise UserError(
                "the vllm backend places the model on the visible GPUs itself: drop "
                "--device/--device-map (choose GPUs with CUDA_VISIBLE_DEVICES) or use --backend hf"
            )
        args = {"dtype": self.dtype or "auto", "trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            args.update(revision=self.revision, tokenizer_revision=self.revision)
        if self.attn_implementation in VLLM_ATTENTION:
            args["attention_backend"] = VLLM_ATTENTION[self.attn_implementation]
        return args


__all__ = ["Loading", "VLLM_ATTENTION"]
