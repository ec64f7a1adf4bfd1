"""The fused logit-lens engine: how far each layer's prediction is from the final one.

- :func:`token_divergences` ``(lm, token_ids, prompt_len) -> [T, L]`` JSD in nats of one sequence.
- :func:`divergences_from_states` ``(lm, states) -> [N, L]`` from block outputs (L x ``[N, d]``),
  e.g. those ``BatchSampler.run(on_hidden=...)`` hands out during generation.
- :func:`settling_depths_from_states` ``(lm, states, g) -> [N]``: the DTR fast path.
- :func:`lens_profile` / :func:`settle`: the same with KL, entropies, top-K ids and the final
  distribution's statistics; :func:`sampled_states`: the batched scoring forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thinkscope.lens.engine import (
    FinalStats,
    LensProfile,
    Settling,
    States,
    lens_profile,
    ln_base,
    settle,
)
from thinkscope.lens.forward import sampled_states, token_divergences, token_profile
from thinkscope.lens.head import Head
from thinkscope.models import LM

__all__ = [
    "FinalStats",
    "Head",
    "LensProfile",
    "Settling",
    "divergences_from_states",
    "lens_profile",
    "ln_base",
    "sampled_states",
    "settle",
    "settling_depths_from_states",
    "token_divergences",
    "token_profile",
]


def divergences_from_states(lm: LM, states: States, **options) -> torch.Tensor:
    """``D`` ``[N, L]``: JSD in nats of N positions given block outputs ``states`` (L x ``[N, d]``,
    layers 1..L, before the final norm). ``options`` as for :func:`lens_profile`."""
    return lens_profile(lm, states, **options).jsd


def settling_depths_from_states(
    lm: LM, states: States, g: float | Sequence[float], base: str | float = "e"
) -> torch.Tensor:
    """Settling depths (1-indexed, int64) by the fast path: ``[N]`` for one threshold ``g``
    (in ``base`` units), ``[N, G]`` for a sequence of thresholds."""
    many = isinstance(g, Sequence)
    thresholds = [float(x) * ln_base(base) for x in (g if many else [g])]
    depths = settle(lm, states, thresholds).depths
    return depths if many else depths[:, 0]
