"""Interventions on the residual stream and its components, each returning a :class:`Handle`.

- :func:`steer` adds ``alpha * v`` to block outputs (real positions from ``start`` on);
- :func:`ablate_direction` projects a direction out of block outputs;
- :func:`ablate_layers` removes what a block (or its attention or MLP) writes to the stream;
- :func:`ablate_heads` removes attention heads (their slice of the output projection's input);
- :func:`patch` writes activations recorded elsewhere into given positions.

Every function registers hooks at once; leave them with ``handle.remove()`` or a ``with``
block. Handles compose: hooks on one module run in the order they were registered, each on the
output of the previous one. All of them work inside ``model.generate`` and thinkscope's
KV-cached sampler, where positions are counted among each row's real tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from thinkscope.core.errors import UserError
from thinkscope.models import LM
from thinkscope.models.hooks.base import (
    MaskTracker,
    as_vector,
    block_input,
    check_layers,
    masked_mean,
    replace_output,
)
from thinkscope.models.hooks.points import Handle, hook, output_tensor, point

METHODS = ("zero", "mean")
COMPONENTS = ("block", "attn", "mlp")
OUT_PROJ_NAMES = ("o_proj", "out_proj", "c_proj", "dense", "wo")


def _tracked(lm: LM) -> tuple[Handle, MaskTracker]:
    tracker = MaskTracker()
    return tracker.attach(lm), tracker


def steer(
    lm: LM, vectors: Mapping[int, torch.Tensor], alpha: float = 1.0, start: int = 0
) -> Handle:
    """Add ``alpha * vectors[l]`` ``[d]`` to the output of block ``l`` at every real position
    whose index (among its row's real tokens) is ``>= start``. ``alpha = 0`` changes nothing,
    bit for bit."""
    prepared = {
        layer: as_vector(lm, vectors[layer], f"the steering vector of layer {layer}")
        for layer in check_layers(lm, vectors)
    }
    handle, tracker = _tracked(lm)
    for layer, v in prepared.items():

        def hook_fn(_m, _args, output, v=v):
            h = output_tensor(output)
            keep = tracker.real(h) & (tracker.positions(h) >= start)
            return replace_output(output, h + (alpha * keep.unsqueeze(-1).to(h.dtype)) * v.to(h))

        handle.add(hook(point(lm, f"blocks.{layer}"), hook_fn))
    return handle


def ablate_direction(lm: LM, direction, layers: Sequence[int] | None = None) -> Handle:
    """Project ``direction`` out of the block outputs of ``layers`` (default: all):
    ``h <- h - (h . u) u`` with ``u`` the unit direction. ``direction`` is a vector ``[d]`` or
    ``{layer: [d]}``."""
    if isinstance(direction, Mapping):
        per_layer = {layer: direction[layer] for layer in check_layers(lm, direction)}
    else:
        chosen = check_layers(lm, layers if layers is not None else range(1, lm.n_layers + 1))
        per_layer = {layer: direction for layer in chosen}
    units = {}
    for layer, vector in per_layer.items():
        v = as_vector(lm, vector, f"the direction of layer {layer}").double()
        if float(v.norm()) == 0:
            raise UserError(f"the direction of layer {layer} is zero: nothing to project out")
        units[layer] = v / v.norm()
    handle, tracker = _tracked(lm)
    for layer, u in units.items():

        def hook_fn(_m, _args, output, u=u):
            h = output_tensor(output)
            uh = u.to(h)
            real = tracker.real(h).unsqueeze(-1).to(h.dtype)
            return replace_output(output, h - real * (h @ uh).unsqueeze(-1) * uh)

        handle.add(hook(point(lm, f"blocks.{layer}"), hook_fn))
    return handle


def _replacement(
    update: torch.Tensor, real: torch.Tensor, method: str, mean: torch.Tensor | None
) -> torch.Tensor:
    """What replaces ``update`` ``[B, T, d]`` at the real positions under ``method``."""
    if method == "zero":
        value = torch.zeros_like(update)
    elif mean is not None:
        value = mean.to(update).expand_as(update)
    else:
        value = masked_mean(update, real).expand_as(update)
    return torch.where(real.unsqueeze(-1), value, update)


def ablate_layers(
    lm: LM,
    layers: Sequence[int],
    method: str = "zero",
    component: str = "block",
    means: Mapping[int, torch.Tensor] | None = None,
) -> Handle:
    """Remove what ``component`` of each layer writes to the residual stream.

    ``component``: ``block`` (its update ``out - in``: the block output becomes its input plus
    the replacement), ``attn`` or ``mlp`` (that module's output). ``method``: ``zero``, or
    ``mean``: the update's mean over each row's real positions in the current call, or
    ``means[l]`` ``[d]`` when given (use fixed means, e.g. from :func:`collect` of the updates,
    when decoding with a KV cache, where each call holds a single position).
    """
    if method not in METHODS:
        raise UserError(f"unknown ablation method {method!r}; choose one of {', '.join(METHODS)}")
    if component not in COMPONENTS:
        raise UserError(f"unknown component {component!r}; choose one of {', '.join(COMPONENTS)}")
    chosen = check_layers(lm, layers)
    if component != "block":  # every module exists before any hook is registered
        modules = {layer: point(lm, f"blocks.{layer}.{component}") for layer in chosen}
    fixed = {layer: as_vector(lm, means[layer], f"means[{layer}]") for layer in means or {}}
    if method == "zero" and fixed:
        raise UserError("means are only used with method='mean'")
    handle, tracker = _tracked(lm)
    for layer in chosen:
        mean = fixed.get(layer)
        if component == "block":

            def hook_fn(_m, args, kwargs, output, mean=mean):
                h, x = output_tensor(output), block_input(args, kwargs)
                new = x + _replacement(h - x, tracker.real(h), method, mean)
                return replace_output(output, new)

            module = lm.anatomy.layers[layer - 1]
            handle.add(hook(module, hook_fn, with_kwargs=True))
        else:

            def hook_fn(_m, _args, output, mean=mean):
                h = output_tensor(output)
                return replace_output(output, _replacement(h, tracker.real(h), method, mean))

            handle.add(hook(modules[layer], hook_fn))
    return handle


def n_heads(lm: LM) -> int:
    """Attention heads per layer, from the model's config."""
    config = lm.model.config
    for name in ("num_attention_heads", "n_head", "num_heads"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    raise UserError(f"cannot tell how many attention heads a {config.model_type!r} model has")


def out_projection(attention: nn.Module) -> nn.Module:
    """The attention module's output projection, whose input is the heads' outputs side by side."""
    for name, child in attention.named_children():
        if name in OUT_PROJ_NAMES:
            return child
    raise UserError(f"found no output projection ({'/'.join(OUT_PROJ_NAMES)}) in {attention}")


def ablate_heads(
    lm: LM,
    heads: Mapping[int, Sequence[int]],
    method: str = "zero",
    means: Mapping[int, torch.Tensor] | None = None,
) -> Handle:
    """Remove heads ``heads[l]`` (0-based) of layer ``l``'s attention: their slice of the output
    projection's input ``[B, T, H * d_head]`` becomes zero, or its mean over each row's real
    positions in the current call (``method="mean"``), or ``means[l]`` ``[H * d_head]``."""
    if method not in METHODS:
        raise UserError(f"unknown ablation method {method!r}; choose one of {', '.join(METHODS)}")
    per_layer = n_heads(lm)
    prepared = {}
    for layer in check_layers(lm, heads):
        attention = point(lm, f"blocks.{layer}.attn")
        chosen = sorted({int(h) for h in heads[layer]})
        if not chosen or not all(0 <= h < per_layer for h in chosen):
            raise UserError(f"heads of layer {layer} must be in 0..{per_layer - 1}, got {chosen}")
        mean = None if means is None or layer not in means else torch.as_tensor(means[layer])
        if mean is not None and not torch.isfinite(mean).all():
            raise UserError(f"means[{layer}] holds NaN or infinite values")
        prepared[layer] = (out_projection(attention), chosen, mean)
    handle, tracker = _tracked(lm)
    for module, chosen, mean in prepared.values():

        def pre_hook(_m, args, chosen=chosen, mean=mean):
            x = args[0]
            size = x.shape[-1] // per_layer
            cols = torch.zeros(x.shape[-1], dtype=torch.bool, device=x.device)
            for h in chosen:
                cols[h * size : (h + 1) * size] = True
            real = tracker.real(x)
            if method == "zero":
                value = torch.zeros_like(x)
            elif mean is not None:
                value = mean.to(x).expand_as(x)
            else:
                value = masked_mean(x, real).expand_as(x)
            where = real.unsqueeze(-1) & cols
            return (torch.where(where, value, x), *args[1:])

        handle.add(hook(module, pre_hook, pre=True))
    return handle


def patch(
    lm: LM, source: Mapping[int, torch.Tensor], positions: Sequence[int] | None = None
) -> Handle:
    """Write ``source[l]`` into the output of block ``l`` at ``positions`` (indices among each
    row's real tokens, default ``0..P-1``). ``source[l]`` is ``[B, P, d]`` (one per row) or
    ``[P, d]`` (every row), as :func:`thinkscope.interp.activations.record` returns."""
    prepared = {}
    for layer in check_layers(lm, source):
        values = torch.as_tensor(source[layer]).detach().to(lm.device)
        if values.dim() == 2:
            values = values.unsqueeze(0)
        if values.dim() != 3 or not torch.isfinite(values).all():
            raise UserError(f"source[{layer}] must be a finite [B, P, d] or [P, d] tensor")
        where = list(range(values.shape[1])) if positions is None else [int(p) for p in positions]
        if len(where) != values.shape[1] or min(where, default=0) < 0:
            raise UserError(
                f"source[{layer}] holds {values.shape[1]} positions but {len(where)} "
                "non-negative positions were given"
            )
        prepared[layer] = (values, where)
    handle, tracker = _tracked(lm)
    for layer, (values, where) in prepared.items():

        def hook_fn(_m, _args, output, values=values, where=where):
            h = output_tensor(output)
            if values.shape[0] not in (1, h.shape[0]):
                raise UserError(f"patch source has {values.shape[0]} rows, the batch {h.shape[0]}")
            index, real = tracker.positions(h), tracker.real(h)
            for k, p in enumerate(where):
                hit = ((index == p) & real).unsqueeze(-1)
                h = torch.where(hit, values[:, k : k + 1].to(h), h)
            return replace_output(output, h)

        handle.add(hook(point(lm, f"blocks.{layer}"), hook_fn))
    return handle
