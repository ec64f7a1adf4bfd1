"""The hook plumbing every intervention shares: a removable handle, the padding mask, layer checks.

Layers are numbered as in the lens: layer ``l`` is the output of decoder block ``l`` (1..L),
``lm.anatomy.layers[l - 1]``. Every intervention registers plain PyTorch hooks on the model's
own modules (found by :mod:`thinkscope.models.adapter`) and returns a :class:`Handle`, active
at once and usable as a context manager; removing it removes every hook it registered, so the
model is exactly as before. A :class:`MaskTracker` reads the ``attention_mask`` of each call of
the model, so hooks act on real tokens only, both in one padded forward pass and during
KV-cached decoding (where the mask grows by one column per step and the call holds one token).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch.utils.hooks import RemovableHandle

from thinkscope.core.errors import UserError
from thinkscope.models import LM


@dataclass
class Handle:
    """Hooks registered by one intervention (or several, via :func:`combine`).

    >>> with steer(lm, {3: v}, alpha=4.0):
    ...     lm.model(input_ids=ids)
    >>> handle = steer(lm, {3: v}); handle.remove()
    """

    hooks: list[RemovableHandle] = field(default_factory=list)

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        while self.hooks:
            self.hooks.pop().remove()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *_exc) -> None:
        self.remove()


def combine(*handles: Handle) -> Handle:
    """One handle that removes all of ``handles``."""
    return Handle([hook for handle in handles for hook in handle.hooks])


class MaskTracker:
    """The real-token mask and position index of the tokens in the model's current call."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None  # [B, S] attention mask of the current call

    def attach(self, lm: LM) -> RemovableHandle:
        def pre_hook(_module, args, kwargs):
            mask = kwargs.get("attention_mask")
            self.mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None

        return lm.model.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def real(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` bool: which of the ``T`` positions in ``hidden`` ``[B, T, d]`` are real."""
        b, t = hidden.shape[:2]
        if self.mask is None or self.mask.shape[0] != b or self.mask.shape[1] < t:
            return torch.ones(b, t, dtype=torch.bool, device=hidden.device)
        return self.mask[:, -t:].to(hidden.device).bool()

    def positions(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` int64: each position's index among its row's real tokens (0 = first)."""
        b, t = hidden.shape[:2]
        if self.mask is None or self.mask.shape[0] != b or self.mask.shape[1] < t:
            return torch.arange(t, device=hidden.device).expand(b, t)
        return (self.mask.to(hidden.device).long().cumsum(1) - 1)[:, -t:]


def check_layers(lm: LM, layers: Iterable[int]) -> list[int]:
    """``layers`` as a sorted list, each in 1..L, or a :class:`UserError`."""
    out = sorted({int(layer) for layer in layers})
    bad = [layer for layer in out if not 1 <= layer <= lm.n_layers]
    if bad or not out:
        raise UserError(f"layers must be in 1..{lm.n_layers} (layer l = output of block l): {bad}")
    return out


def replace_output(output, hidden: torch.Tensor):
    """A block's (or attention module's) output with its first element replaced by ``hidden``."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def first(output) -> torch.Tensor:
    """The hidden states of a module's output, a tensor or a tuple whose first item it is."""
    return output[0] if isinstance(output, tuple) else output


def block_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The residual stream a decoder block received (positional or ``hidden_states=``)."""
    return args[0] if args else kwargs["hidden_states"]


def masked_mean(hidden: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-row mean ``[B, 1, d]`` of ``hidden`` ``[B, T, d]`` over the real positions."""
    weights = real.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)


def as_vector(lm: LM, vector, name: str) -> torch.Tensor:
    """A ``[d]`` float tensor on the model's device, or a :class:`UserError`."""
    v = torch.as_tensor(vector).detach()
    d = lm.anatomy.unembed.weight.shape[1]
    if v.shape != (d,):
        raise UserError(f"{name} must be a vector of size {d} (the model's width), not {v.shape}")
    if not torch.isfinite(v).all():
        raise UserError(f"{name} holds NaN or infinite values")
    return v.to(lm.device)
