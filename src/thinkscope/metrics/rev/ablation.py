"""Ablations for ``apl`` and ``cud``: how far each sequence's final-position logits move when
one MLP is mean-ablated or one attention head is zeroed.

The interventions are :func:`~thinkscope.models.hooks.interventions.ablate_layers`
(``component="mlp"``, ``method="mean"``: the MLP output at every real position becomes its mean
over the row's real positions) and :func:`~thinkscope.models.hooks.interventions.ablate_heads`
(the head's slice of the attention output projection's input becomes zero). Sequences are
right-padded into batches; per batch one clean pass keeps every block's output, and an ablation
at block ``l`` then computes blocks ``l..L-1`` only (the blocks below return their clean
outputs). The last real position of each row is read through the model's own head (``lm.head``
on the last block's output, ``logits_to_keep=1``), so no ``[B, S, V]`` logits exist.

The shift of an ablation is ``||logits_ablated - logits_clean||_2`` at that position. On a
hybrid stack the MLP plan covers the blocks with a feed-forward part and the head plan the
blocks with softmax attention (``Anatomy.attention_layers``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from thinkscope.models import LM
from thinkscope.models.hooks.interventions import ablate_heads, ablate_layers, n_heads
from thinkscope.models.hooks.points import capture, output_tensor

BATCH_TOKENS = 4096  # padded tokens per ablation pass (L of them kept: clean block outputs)


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


def mlp_plan(lm: LM) -> list[Ablation]:
    """One MLP ablation per block that has a feed-forward part."""
    return [Ablation(layer) for layer, mlp in enumerate(lm.anatomy.mlps) if mlp is not None]


def head_plan(lm: LM) -> list[Ablation]:
    """One ablation per head of every block that has softmax attention."""
    layers = lm.anatomy.attention_layers
    return [Ablation(layer - 1, head) for layer in layers for head in range(n_heads(lm))]


@dataclass
class Padded:
    """Sequences right-padded into one batch: ``ids``, ``mask`` ``[N, S]``, ``last`` ``[N]``."""

    ids: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor

    @classmethod
    def of(cls, lm: LM, seqs: Sequence[Sequence[int]]) -> Padded:
        width, pad = max(map(len, seqs)), lm.tokenizer.pad_token_id or 0
        rows = [list(s) + [pad] * (width - len(s)) for s in seqs]
        mask = [[1] * len(s) + [0] * (width - len(s)) for s in seqs]
        last = [len(s) - 1 for s in seqs]
        return cls(*(torch.tensor(x, device=lm.device) for x in (rows, mask, last)))

    @torch.no_grad()
    def run(self, lm: LM) -> list:
        """One forward pass; ``[L]`` the blocks' outputs as they returned them (tensors or
        tuples), read by hooks. The head runs on the final position only (``logits_to_keep``)."""
        extra = (
            {"logits_to_keep": 1}
            if "logits_to_keep" in inspect.signature(lm.model.forward).parameters
            else {}
        )
        layers = range(1, lm.n_layers + 1)
        with capture(lm, layers, reduce=lambda output: output) as seen:
            lm.model(input_ids=self.ids, attention_mask=self.mask, use_cache=False, **extra)
        return [seen[layer][0] for layer in layers]

    def logits(self, lm: LM, outputs: list) -> torch.Tensor:
        """``[N, V]`` float64 logits at each row's last real position from the last block's
        output (``lm.head``, so no ``[N, S, V]`` logits exist)."""
        hidden = output_tensor(outputs[-1])
        rows = torch.arange(len(self.last), device=hidden.device)
        return lm.head(hidden[rows, self.last.to(hidden.device)]).double().cpu()


@contextlib.contextmanager
def skip_blocks(lm: LM, outputs: Sequence) -> Iterator[None]:
    """Blocks ``0 .. len(outputs)-1`` return ``outputs[j]`` (their clean outputs on the same
    batch) instead of running: an intervention at block ``l`` leaves the residual stream below
    block ``l`` unchanged, so its pass only needs to compute blocks ``l .. L-1``."""
    blocks = lm.anatomy.layers[: len(outputs)]
    saved = [block.__dict__.get("forward") for block in blocks]  # e.g. accelerate's wrapper
    for block, out in zip(blocks, outputs, strict=True):
        block.forward = lambda *_a, out=out, **_k: out  # an instance attribute shadows the class's
    try:
        yield
    finally:
        for block, before in zip(blocks, saved, strict=True):
            if before is None:
                del block.forward
            else:
                block.forward = before


@torch.no_grad()
def logit_shifts(lm: LM, seqs: Sequence[Sequence[int]], plan: Sequence[Ablation]) -> np.ndarray:
    """``[N, len(plan)]``: L2 distance of each ablation's final logits from the clean ones.

    Sequences run in padded batches of at most :data:`BATCH_TOKENS` tokens. Per batch, one clean
    pass keeps every block's output; an ablation at block ``l`` then runs blocks ``l .. L-1``
    only (:func:`skip_blocks`), about half the model on average, with the same values as a full
    pass (the skipped blocks' outputs are the clean ones, computed on the same batch).
    """
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out = np.zeros((len(seqs), len(plan)))
    start = 0
    while start < len(order):
        stop = start + max(1, BATCH_TOKENS // len(seqs[order[start]]))
        rows = order[start:stop]
        batch = Padded.of(lm, [seqs[i] for i in rows])
        outputs = batch.run(lm)
        clean = batch.logits(lm, outputs)
        for k, ablation in enumerate(plan):
            with skip_blocks(lm, outputs[: ablation.layer]), ablation.apply(lm):
                shifted = batch.logits(lm, batch.run(lm))
            out[rows, k] = (shifted - clean).norm(dim=-1).numpy()
        start = stop
    return out
