"""REV's in-pass metrics, reduced in hooks while the scoring forward pass runs.

The window of a trace is its T completion tokens, read at the positions the lens reads: the
scoring pass runs ``prompt + completion[:-1]`` and position ``P-1+t`` predicts token t
(``lens/forward.py``). Each hook finds a row's window from the pass's own ``attention_mask``
(its last T real positions), so padding on either side and a pass split into several forward
calls (rows consumed in order) are both handled.

- ``ae`` (activation energy): the middle block's output (``hidden_states[L // 2]``, the output
  of block ``L // 2``, 1-indexed) over the window ``X`` ``[T, d]``, each feature divided by its
  standard deviation over the window (ddof 0; a zero deviation counts as 1); the mean L2 norm
  per token, divided by T.
- ``fl`` (feature load): the same ``X``: ``(mean |X| + share of |X| above the median |X|) / 2``.
  The second term sits just under 1/2 by construction (the seed's definition); ``fl`` varies
  mainly through the first.
- ``ape`` (attention process entropy): the Shannon entropy in nats of every attention row of
  every head, averaged over heads (``[T, A]`` per trace over the A layers with softmax
  attention, ``Anatomy.attention_layers``, kept in token_metrics) and then over window
  positions and those layers. The probabilities come from the model's eager attention,
  switched on for this pass only; each layer's ``[B, H, S, S]`` is reduced to ``[B, S]`` as it
  is produced, so ``[A, H, T, T]`` never exists.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from thinkscope.models import LM
from thinkscope.models.hooks.points import combine, hook, output_tensor, point

IN_PASS = frozenset({"ae", "fl", "ape"})


def middle_block(n_layers: int) -> int:
    """Index in ``anatomy.layers`` of the block whose output is ``hidden_states[L // 2]``."""
    return max(1, n_layers // 2) - 1


def activation_energy(window: np.ndarray) -> float:
    """``ae`` of window states ``[T, d]`` (NaN when T = 0)."""
    x = np.asarray(window, dtype=np.float64)
    if len(x) == 0:
        return math.nan
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return float(np.linalg.norm(x / sd, axis=1).mean() / len(x))


def feature_load(window: np.ndarray) -> float:
    """``fl`` of window states ``[T, d]`` (NaN when T = 0)."""
    a = np.abs(np.asarray(window, dtype=np.float64))
    if a.size == 0:
        return math.nan
    return float((a.mean() + (a > np.median(a)).mean()) / 2)


def head_mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``[B, S]``: Shannon entropy (nats) of each attention row ``probs`` ``[B, H, S, S]``,
    averaged over the H heads (zero probabilities contribute 0)."""
    return torch.special.entr(probs.double()).sum(-1).mean(1)


@dataclass
class WindowStats:
    """One trace's in-pass values; ``ape_layers`` ``[T, A]`` nats over the attention layers
    (None unless ``ape``)."""

    ae: float = math.nan
    fl: float = math.nan
    ape: float = math.nan
    ape_layers: torch.Tensor | None = None


@dataclass
class _Rows:
    """Which traces the current forward call's rows are, and their window positions."""

    counts: list[int]
    done: int = 0
    windows: list[torch.Tensor] = field(default_factory=list)  # per row: [T] positions
    first: int = 0  # trace index (among non-empty ones) of row 0

    def begin(self, mask: torch.Tensor) -> None:
        self.first = self.done
        self.windows = []
        for row in range(mask.shape[0]):
            real = mask[row].nonzero().flatten()
            self.windows.append(real[len(real) - self.counts[self.done + row] :])
        self.done += mask.shape[0]


@contextlib.contextmanager
def eager_attention(lm: LM) -> Iterator[None]:
    """Run ``lm`` with eager attention (which returns its probabilities) inside the block."""
    before = lm.model.config._attn_implementation
    if before != "eager":
        lm.model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before != "eager":
            lm.model.set_attn_implementation(before)


@contextlib.contextmanager
def window_probe(
    lm: LM, completions: Sequence[Sequence[int]], what: frozenset[str]
) -> Iterator[list[WindowStats]]:
    """Hooks that reduce ``what`` (a subset of ``ae``, ``fl``, ``ape``) during the forward
    pass(es) run inside the block over ``prompt + completion[:-1]`` of each trace with a
    non-empty completion, in order. Yields one :class:`WindowStats` per trace of
    ``completions`` (empty completions stay NaN); filled when the block exits.
    """
    stats = [WindowStats() for _ in completions]
    live = [i for i, c in enumerate(completions) if len(c)]
    rows = _Rows([len(completions[i]) for i in live])
    n_layers, attention = lm.n_layers, lm.anatomy.attention_layers
    per_layer: dict[int, list[torch.Tensor]] = {i: [] for i in live}  # trace -> A x [T]

    def on_model(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if mask is None:
            mask = torch.ones(ids.shape[:2], dtype=torch.long, device=ids.device)
        rows.begin(mask.cpu())

    def on_middle(_module, _args, output):
        hidden = output_tensor(output)
        for row, window in enumerate(rows.windows):
            x = hidden[row, window.to(hidden.device)].double().cpu().numpy()
            target = stats[live[rows.first + row]]
            if "ae" in what:
                target.ae = activation_energy(x)
            if "fl" in what:
                target.fl = feature_load(x)

    def on_attention(_module, _args, output):
        probs = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if probs is None:
            raise RuntimeError("the attention module returned no probabilities in eager mode")
        entropy = head_mean_entropy(probs).cpu()  # [B, S]
        for row, window in enumerate(rows.windows):
            per_layer[live[rows.first + row]].append(entropy[row, window])

    handles = [hook(point(lm, "model"), on_model, pre=True, with_kwargs=True)]
    if what & {"ae", "fl"}:
        handles.append(hook(point(lm, f"blocks.{middle_block(n_layers) + 1}"), on_middle))
    if "ape" in what:
        handles += [hook(point(lm, f"blocks.{layer}.attn"), on_attention) for layer in attention]
    with combine(*handles), eager_attention(lm) if "ape" in what else contextlib.nullcontext():
        yield stats
    if "ape" in what:
        for i, layers in per_layer.items():
            if len(layers) != len(attention):
                raise RuntimeError(f"saw {len(layers)} attention layers, not {len(attention)}")
            table = torch.stack(layers, dim=1)  # [T, A]
            stats[i].ape_layers = table.float()
            stats[i].ape = float(table.mean())
