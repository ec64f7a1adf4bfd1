"""What every intervention shares: the padding mask, layer checks, vectors.

Layers are numbered as in the lens: layer ``l`` is the output of decoder block ``l`` (1..L),
``lm.anatomy.layers[l - 1]``. Every intervention registers plain PyTorch hooks on the model's
own modules through :mod:`~thinkscope.models.hooks.points` and returns a ``Handle``, active
at once and usable as a context manager; removing it removes every hook it registered, so the
model is exactly as before. A :class:`MaskTracker` reads the ``attention_mask`` of each call of
the model, so hooks act on real tokens only, both in one padded forward pass and during
KV-cached decoding (where the mask grows by one column per step and the call holds one token).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from thinkscope.core.errors import UserError
from thinkscope.models import LM
from thinkscope.models.hooks.points import Handle, hook, point


class MaskTracker:
    """The real-token mask and position index of the tokens in the model's current call."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None  # [B, S] attention mask of the current call

    def attach(self, lm: LM) -> Handle:
        def pre_hook(_module, args, kwargs):
            mask = kwargs.get("attention_mask")
            self.mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None

        return hook(point(lm, "model"), pre_hook, pre=True, with_kwargs=True)

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
