"""The scoring forward pass: block outputs at the positions each generated token was sampled from.

Alignment (DESIGN.md): generated token t is predicted by the hidden states of the position
*before* it, so a sequence of P prompt tokens and T generated tokens runs ``prompt + tokens[:-1]``
through the model and keeps positions ``P-1 .. P+T-2``. Sequences are right-padded: a causal
model never lets a real position attend to the padding after it, so batching cannot change a
real position's states (``tests/test_lens.py`` checks batched against one-by-one).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch

from thinkscope.lens.engine import LensProfile, lens_profile
from thinkscope.models import LM


@torch.no_grad()
def sampled_states(
    lm: LM, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One batched forward pass; block outputs for every generated token of every sequence.

    Returns L tensors ``[N, d]`` (N = total generated tokens, sequence by sequence, layers
    1..L, before the final norm) and the generated token ids ``[N]`` (the targets).
    """
    if any(len(c) and not len(p) for p, c in zip(prompts, completions, strict=True)):
        raise ValueError("every sequence with generated tokens needs at least one prompt token")
    seqs = [list(p) + list(c)[:-1] for p, c in zip(prompts, completions, strict=True) if len(c)]
    counts = [len(c) for c in completions if len(c)]
    targets = torch.tensor([t for c in completions for t in c], dtype=torch.long)
    if not seqs:
        d = lm.anatomy.unembed.weight.shape[1]
        return [torch.empty(0, d, device=lm.device) for _ in range(lm.n_layers)], targets
    width, pad = max(map(len, seqs)), lm.tokenizer.pad_token_id or 0
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=lm.device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=lm.device)
    flat = torch.cat(
        [
            row * width + torch.arange(len(s) - n, len(s))
            for row, (s, n) in enumerate(zip(seqs, counts, strict=True))
        ]
    ).to(lm.device)
    extra = (
        {"logits_to_keep": 1}
        if "logits_to_keep" in inspect.signature(lm.model.forward).parameters
        else {}
    )
    with lm.record_blocks() as states:
        lm.model(input_ids=ids, attention_mask=mask, use_cache=False, **extra)
    gathered = []
    while states:  # free each layer's full [B, S, d] output as soon as it is gathered
        state = states.pop(0)  # on its layer's device (device_map): the lens moves the rows
        gathered.append(state.reshape(width * len(seqs), -1)[flat.to(state.device)])
    return gathered, targets.to(lm.device)


def token_profile(
    lm: LM, token_ids: Sequence[int] | torch.Tensor, prompt_len: int, **options
) -> LensProfile:
    """Full lens profile (see :func:`lens_profile`) of one sequence's generated tokens."""
    ids = [int(t) for t in token_ids]
    states, targets = sampled_states(lm, [ids[:prompt_len]], [ids[prompt_len:]])
    return lens_profile(lm, states, targets=targets, **options)


def token_divergences(
    lm: LM, token_ids: Sequence[int] | torch.Tensor, prompt_len: int
) -> torch.Tensor:
    """``D_{t,l}`` ``[T, L]``: JSD in nats (float32) of the T = len(token_ids) - prompt_len
    generated tokens, layers 1..L, against the final distribution they were sampled from.

    >>> jsd = token_divergences(lm, prompt_ids + completion_ids, len(prompt_ids))
    >>> jsd.shape == (len(completion_ids), lm.n_layers)
    """
    return token_profile(lm, token_ids, prompt_len).jsd
