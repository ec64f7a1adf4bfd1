"""Find the parts of any Hugging Face causal LM that thinkscope needs, by probing the model.

No per-architecture naming table: the decoder blocks are the ``nn.ModuleList`` whose length
is the model's layer count, the final norm is the normalisation module that sits directly on
the base model, the unembedding is ``get_output_embeddings()``, and the logit post-processing
(Gemma 2's soft-capping, Cohere's and Granite's logit scaling, Falcon-H1's head multiplier)
is read from the config.
:func:`verify_head` then checks the whole head against the model's own logits, so an
architecture this module does not understand fails loudly instead of giving wrong numbers.

Blocks need not have attention: each block's token mixers (softmax attention, linear
attention, convolution, state-space model) and whether its feed-forward part routes to experts
are read from its children, so hybrid and attention-free stacks (LFM2, Jamba, Mamba2,
Qwen3-Next, Granite-MoE-hybrid, Falcon-H1) are probed like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thinkscope.core.errors import UserError
from thinkscope.models.hooks.points import hook, output_tensor


@dataclass(frozen=True)
class Anatomy:
    """The modules of a decoder-only transformer that the lens and the hooks address."""

    layers: nn.ModuleList  # decoder blocks, input to output
    final_norm: nn.Module | None  # applied to the last residual stream before the unembedding
    unembed: nn.Module  # d -> V
    attentions: tuple[nn.Module | None, ...]  # each block's softmax attention, None if it has none
    mlps: tuple[nn.Module | None, ...]  # each block's feed-forward part (MLP or experts), or None
    token_mixers: tuple[dict[str, nn.Module], ...]  # each block's token mixers by kind (MIXERS)
    experts: tuple[bool, ...]  # whether each block's feed-forward part routes to experts
    softcap: float | None  # logits = cap * tanh(logits / cap)
    logit_multiplier: float  # logits *= this (logit_scale, 1/logits_scaling, lm_head_multiplier)

    @property
    def mixers(self) -> tuple[tuple[str, ...], ...]:
        """The kinds of each block's token mixers, e.g. ``("ssm", "attention")``."""
        return tuple(tuple(kinds) for kinds in self.token_mixers)

    @property
    def attention_layers(self) -> list[int]:
        """The layers (1..L) whose blocks have softmax attention."""
        return [i for i, module in enumerate(self.attentions, start=1) if module is not None]


#: What mixes tokens in a block, by the words in its child's name or class name; the first
#: kind that matches wins, so a linear attention is not taken for softmax attention.
MIXERS = {
    "linear_attention": ("linear_attn", "linearattention", "deltanet", "retention", "rwkv"),
    "attention": ("attn", "attention"),
    "ssm": ("mamba", "mixer", "ssm", "recurrent"),
    "convolution": ("conv",),
}
_FEED_FORWARD = ("mlp", "feed_forward", "ffn", "moe")


def _n_layers(config) -> int:
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise UserError(
        f"cannot tell how many layers a {config.model_type!r} model has from its config"
    )


def _find_layers(model: nn.Module, n_layers: int) -> nn.ModuleList:
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == n_layers
    ]
    if not candidates:
        raise UserError(f"found no list of {n_layers} decoder blocks in {type(model).__name__}")
    return min(candidates, key=lambda item: item[0].count("."))[1]


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "norm" in type(module).__name__.lower()


def _find_final_norm(model: nn.Module, layers: nn.ModuleList) -> nn.Module | None:
    """The norm beside the decoder-block list (``model.norm``, ``transformer.ln_f``)."""
    for module in model.modules():
        children = list(module.children())
        if any(child is layers for child in children):
            norms = [child for child in children if _is_norm(child)]
            return norms[-1] if norms else None
    return None


def _mixer_kind(name: str, module: nn.Module) -> str | None:
    """The kind of token mixer ``module`` (a block's child called ``name``) is, if it is one."""
    words = f"{name} {type(module).__name__}".lower()
    if _is_norm(module) or any(word in name.lower() for word in _FEED_FORWARD):
        return None
    return next((kind for kind, keys in MIXERS.items() if any(k in words for k in keys)), None)


def _has_experts(module: nn.Module | None) -> bool:
    """Whether a feed-forward part routes to experts (it holds an ``experts`` module)."""
    names = (n.rsplit(".", 1)[-1] for n, _ in module.named_modules()) if module is not None else ()
    return "experts" in names


def _block_parts(block: nn.Module) -> tuple[dict[str, nn.Module], nn.Module | None]:
    """A block's token mixers by kind, and its (first) feed-forward part."""
    mixers: dict[str, nn.Module] = {}
    feed_forward = None
    for name, child in block.named_children():
        kind = _mixer_kind(name, child)
        if kind is not None:
            mixers.setdefault(kind, child)
        elif feed_forward is None and any(word in name.lower() for word in _FEED_FORWARD):
            feed_forward = child
    return mixers, feed_forward


def inspect_model(model: nn.Module) -> Anatomy:
    """Probe ``model`` for its decoder blocks, final norm, unembedding and logit post-processing."""
    config = model.config
    layers = _find_layers(model, _n_layers(config))
    unembed = model.get_output_embeddings()
    if unembed is None:
        raise UserError(f"{type(model).__name__} has no output embeddings: not a causal LM")
    cap = getattr(config, "final_logit_softcapping", None)
    multiplier = float(getattr(config, "logit_scale", None) or 1.0)
    multiplier *= float(getattr(config, "lm_head_multiplier", None) or 1.0)  # Falcon-H1's MuP
    if getattr(config, "logits_scaling", None):
        multiplier /= float(config.logits_scaling)
    parts = [_block_parts(block) for block in layers]
    return Anatomy(
        layers=layers,
        final_norm=_find_final_norm(model, layers),
        unembed=unembed,
        attentions=tuple(mixers.get("attention") for mixers, _ in parts),
        mlps=tuple(feed_forward for _, feed_forward in parts),
        token_mixers=tuple(mixers for mixers, _ in parts),
        experts=tuple(_has_experts(feed_forward) for _, feed_forward in parts),
        softcap=float(cap) if cap else None,
        logit_multiplier=multiplier,
    )


def apply_head(anatomy: Anatomy, hidden: torch.Tensor) -> torch.Tensor:
    """Logits ``[..., V]`` from residual-stream states ``[..., d]`` taken before the final norm."""
    if anatomy.final_norm is not None:
        hidden = anatomy.final_norm(hidden)
    logits = anatomy.unembed(hidden)
    if anatomy.logit_multiplier != 1.0:
        logits = logits * anatomy.logit_multiplier
    if anatomy.softcap is not None:
        logits = torch.tanh(logits / anatomy.softcap) * anatomy.softcap
    return logits


@torch.no_grad()
def verify_head(model: nn.Module, anatomy: Anatomy, atol: float = 1e-4) -> None:
    """Check that the head applied to the last block's output reproduces the model's logits."""
    captured: list[torch.Tensor] = []
    last_block = hook(anatomy.layers[-1], lambda _m, _i, out: captured.append(output_tensor(out)))
    with last_block:
        ids = torch.arange(1, 6, device=model.device).unsqueeze(0) % model.config.vocab_size
        logits = model(input_ids=ids).logits
    mine = apply_head(anatomy, captured[-1])
    scale = logits.abs().max().clamp(min=1.0)
    if not torch.allclose(mine.float(), logits.float(), atol=atol * float(scale), rtol=0):
        raise UserError(
            f"the output head of {type(model).__name__} could not be reproduced from its last "
            "block: thinkscope's lens does not support this architecture yet"
        )
