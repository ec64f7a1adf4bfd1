"""Named hook points, and the one place a forward hook is registered.

Every reader and writer of a model's internals (the lens's block outputs, activations, REV's
probes and ablations, steering, ablation and patching) goes through :func:`hook`, which returns
a :class:`Handle` that removes what it registered; :func:`capture` records block outputs;
:func:`stop_after` ends the forward pass at a block, and :func:`forward` runs the model until
then.

Hook points are named as in TransformerLens, with layers numbered as in the lens (1..L):

- ``blocks.{l}``: decoder block ``l``'s output, the residual stream after it;
- ``blocks.{l}.attn``: its softmax attention module's output (blocks that have one);
- ``blocks.{l}.mlp``: its feed-forward part's output (MLP or experts);
- ``model``: the model call itself (a pre-hook sees its input ids and attention mask).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from thinkscope.core.errors import UserError

if TYPE_CHECKING:
    from thinkscope.models.lm import LM

_POINT = re.compile(r"blocks\.(\d+)(?:\.(attn|mlp))?")


@dataclass
class Handle:
    """Hooks registered together; active at once, removed by :meth:`remove` or on leaving a
    ``with`` block, after which the model is exactly as before.

    >>> with steer(lm, {3: v}, alpha=4.0):
    ...     lm.model(input_ids=ids)
    >>> handle = steer(lm, {3: v}); handle.remove()
    """

    hooks: list[RemovableHandle] = field(default_factory=list)

    def add(self, other: Handle) -> None:
        """Take over ``other``'s hooks: removing this handle removes them too."""
        self.hooks.extend(other.hooks)

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


class StopForward(Exception):
    """Raised by a hook to skip the rest of the forward pass; :func:`forward` catches it."""


def output_tensor(output) -> torch.Tensor:
    """The hidden states of a module's output: a tensor, or a tuple whose first item it is."""
    return output[0] if isinstance(output, tuple) else output


def point(lm: LM, name: str) -> nn.Module:
    """The module behind a hook point's name, or a :class:`UserError`."""
    if name == "model":
        return lm.model
    match = _POINT.fullmatch(name)
    if not match:
        raise UserError(f"unknown hook point {name!r}: use blocks.L, blocks.L.attn or blocks.L.mlp")
    layer, part = int(match.group(1)), match.group(2)
    if not 1 <= layer <= lm.n_layers:
        raise UserError(f"hook point {name!r}: layers are 1..{lm.n_layers}")
    modules = {None: lm.anatomy.layers, "attn": lm.anatomy.attentions, "mlp": lm.anatomy.mlps}
    module = modules[part][layer - 1]
    if module is None:
        mixers = " and ".join(lm.anatomy.mixers[layer - 1]) or "no module thinkscope recognises"
        what = "attention" if part == "attn" else "feed-forward part"
        raise UserError(f"hook point {name!r}: block {layer} has no {what} (it mixes by {mixers})")
    return module


def hook(
    module: nn.Module, fn: Callable, *, pre: bool = False, with_kwargs: bool = False
) -> Handle:
    """Register ``fn`` as a forward hook (``pre``: a forward pre-hook) on ``module``."""
    register = module.register_forward_pre_hook if pre else module.register_forward_hook
    return Handle([register(fn, with_kwargs=with_kwargs)])


def stop_after(lm: LM, layer: int) -> Handle:
    """End every forward pass right after block ``layer`` (1..L): the blocks above it, the final
    norm and the head are not computed. Run the model with :func:`forward`."""

    def stop(_module, _args, _output):
        raise StopForward

    return hook(point(lm, f"blocks.{layer}"), stop)


@contextlib.contextmanager
def capture(
    lm: LM,
    layers: Sequence[int],
    reduce: Callable[[object], object] = output_tensor,
) -> Iterator[dict[int, list]]:
    """Record ``reduce(output)`` of each block in ``layers`` (1..L) for every forward pass run
    inside the block: ``{layer: [one entry per pass]}``. The default keeps the block's output
    tensor ``[B, T, d]``; pass ``reduce`` to keep less (a pooled row, or the raw output)."""
    seen: dict[int, list] = {layer: [] for layer in layers}
    handles = [
        hook(
            point(lm, f"blocks.{layer}"),
            lambda _m, _i, out, layer=layer: seen[layer].append(reduce(out)),
        )
        for layer in layers
    ]
    with combine(*handles):
        yield seen


def forward(lm: LM, **inputs) -> object | None:
    """``lm.model(**inputs)`` without gradients; ``None`` when a hook stopped it early."""
    with torch.no_grad():
        try:
            return lm.model(**inputs)
        except StopForward:
            return None
