"""Ablations for ``apl`` and ``cud``: how far each sequence's final-position logits move when
one MLP is mean-ablated or one attention head is zeroed.

The interventions are :func:`thinkscope.interp.ablate_layers` (``component="mlp"``,
``method="mean"``: the MLP output at every real position becomes its mean over the row's real
positions) and :func:`thinkscope.interp.ablate_heads` (the head's slice of the attention output
projection's input becomes zero). Sequences are right-padded into one batch; each ablation is
one forward pass of the batch, and the last real position of each row is read through the
model's own head (``lm.head`` on the last block's output), so no ``[B, S, V]`` logits exist.

The shift of an ablation is ``||logits_ablated - logits_clean||_2`` at that position.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from thinkscope.interp import ablate_heads, ablate_layers
from thinkscope.models import LM
from thinkscope.models.adapter import block_output

BATCH_TOKENS = 8192  # padded tokens per ablation pass


@dataclass(frozen=True)
class Ablation:
    """Mean-ablate the MLP of block ``layer`` (0-indexed; ``head`` None) or zero ``head``."""

    layer: int
    head: int | None = None

    def apply(self, lm: LM):
        """The intervention as an interp handle (a context manager); interp counts from 1."""
        if self.head is None:
            return ablate_layers(lm, [self.layer + 1], method="mean", component="mlp")
        return ablate_heads(lm, {self.layer + 1: [self.head]})


def n_heads(lm: LM) -> int:
    config = lm.model.config
    return next(
        getattr(config, n)
        for n in ("num_attention_heads", "n_head", "num_heads")
        if isinstance(getattr(config, n, None), int)
    )


def mlp_plan(lm: LM) -> list[Ablation]:
    return [Ablation(layer) for layer in range(lm.n_layers)]


def head_plan(lm: LM) -> list[Ablation]:
    return [Ablation(layer, head) for layer in range(lm.n_layers) for head in range(n_heads(lm))]


@torch.no_grad()
def last_logits(lm: LM, seqs: Sequence[Sequence[int]], ablation: Ablation | None) -> torch.Tensor:
    """``[N, V]`` float64 logits at the last position of each of ``seqs`` (one padded pass)."""
    width, pad = max(map(len, seqs)), lm.tokenizer.pad_token_id or 0
    ids = torch.tensor([list(s) + [pad] * (width - len(s)) for s in seqs], device=lm.device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=lm.device)
    last = torch.tensor([len(s) - 1 for s in seqs], device=lm.device)
    extra = (
        {"logits_to_keep": 1}
        if "logits_to_keep" in inspect.signature(lm.model.forward).parameters
        else {}
    )
    captured: list[torch.Tensor] = []
    hook = lm.anatomy.layers[-1].register_forward_hook(
        lambda _m, _i, out: captured.append(block_output(out))
    )
    try:
        with ablation.apply(lm) if ablation is not None else contextlib.nullcontext():
            lm.model(input_ids=ids, attention_mask=mask, use_cache=False, **extra)
    finally:
        hook.remove()
    states = captured[-1][torch.arange(len(seqs), device=lm.device), last]
    return lm.head(states).double().cpu()


def logit_shifts(lm: LM, seqs: Sequence[Sequence[int]], plan: Sequence[Ablation]) -> np.ndarray:
    """``[N, len(plan)]``: L2 distance of each ablation's final logits from the clean ones."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out = np.zeros((len(seqs), len(plan)))
    start = 0
    while start < len(order):
        stop = start + max(1, BATCH_TOKENS // len(seqs[order[start]]))
        rows = order[start:stop]
        part = [seqs[i] for i in rows]
        clean = last_logits(lm, part, None)
        for k, ablation in enumerate(plan):
            out[rows, k] = (last_logits(lm, part, ablation) - clean).norm(dim=-1).numpy()
        start = stop
    return out
