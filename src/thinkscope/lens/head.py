"""The model's output head, split so the lens can run it chunk by chunk into reused buffers.

``lm.head(h)`` is final norm -> unembedding -> logit multiplier -> soft-cap. The lens needs
the same function, but it writes the unembedding product into a preallocated ``[R, V]``
buffer (``torch.mm(out=)``: no page faults for a fresh 50 MB tensor per chunk) and applies the
elementwise post-processing after it. The buffer is fp32 whatever the model's dtype: a bf16
or fp16 unembedding on CUDA multiplies with fp32 accumulation straight into it
(``mm(out_dtype=float32)``), so the logits are never rounded to 8 bits of mantissa.
``tests/test_lens.py`` checks ``Head`` against ``lm.head`` on every tiny model family.

On a model spread over devices (``device_map``) the head works on its unembedding's device:
rows come to it from each layer's device and from the final norm's. An unembedding that
accelerate offloaded (on ``meta`` until a forward needs it) is loaded onto its execution device
once for a whole lens call (:func:`onloaded`), not once per chunk; ``tests/test_device_map.py``
checks both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from thinkscope.models import LM


class Head:
    """``raw``: norm + unembedding into a buffer; ``finish_``: multiplier and soft-cap, in place."""

    def __init__(self, lm: LM) -> None:
        anatomy = lm.anatomy
        self.norm = anatomy.final_norm
        self.unembed = anatomy.unembed
        self.linear = isinstance(anatomy.unembed, nn.Linear)
        self.weight = anatomy.unembed.weight  # [V, d]
        self.bias = getattr(anatomy.unembed, "bias", None) if self.linear else None
        self.multiplier = anatomy.logit_multiplier
        self.softcap = anatomy.softcap
        self.vocab = self.weight.shape[0]
        self.device = self.weight.device  # offloaded weights are real within onloaded

    @torch.no_grad()
    def raw(self, hidden: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Normed, unembedded states ``[R, d]`` -> ``out[:R]`` ``[R, V]`` (float32)."""
        out = out[: hidden.shape[0]]
        if self.norm is not None:
            hidden = self.norm(hidden)
        hidden = hidden.to(self.device, self.weight.dtype)
        if self.linear and out.dtype != self.weight.dtype and out.is_cuda:
            torch.mm(hidden, self.weight.t(), out_dtype=out.dtype, out=out)
            if self.bias is not None:
                out.add_(self.bias)
        elif not self.linear or out.dtype != self.weight.dtype:
            out.copy_(self.unembed(hidden))
        elif self.bias is not None:
            torch.addmm(self.bias, hidden, self.weight.t(), out=out)
        else:
            torch.mm(hidden, self.weight.t(), out=out)
        return out

    def finish_(self, logits: torch.Tensor) -> torch.Tensor:
        """Apply the logit multiplier and soft-cap to ``logits`` ``[R, V]`` in place."""
        if self.multiplier != 1.0:
            logits.mul_(self.multiplier)
        if self.softcap is not None:
            logits.div_(self.softcap).tanh_().mul_(self.softcap)
        return logits

    @torch.no_grad()
    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full head ``[R, d] -> [R, V]`` float32 (allocates; for small inputs and tests)."""
        out = torch.empty(hidden.shape[0], self.vocab, device=self.device, dtype=torch.float32)
        return self.finish_(self.raw(hidden, out))


META = torch.device("meta")


def onloaded(lens: Callable) -> Callable:
    """``lens(lm, ...)`` with the unembedding's weights on its execution device while it runs,
    where accelerate offloaded them (a no-op otherwise), so the :class:`Head` it builds holds
    real weights."""

    @functools.wraps(lens)
    def run(lm, *args, **kwargs):
        unembed = lm.anatomy.unembed
        if getattr(unembed, "_hf_hook", None) is None or unembed.weight.device != META:
            return lens(lm, *args, **kwargs)
        from accelerate.utils import align_module_device

        with align_module_device(unembed):
            return lens(lm, *args, **kwargs)

    return run
