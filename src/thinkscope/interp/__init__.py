"""Interpretability toolbox: activations, directions, probes, CKA and interventions (seed 002)."""

from thinkscope.interp.hooks.base import Handle, combine
from thinkscope.interp.hooks.interventions import (
    ablate_direction,
    ablate_heads,
    ablate_layers,
    patch,
    steer,
)

__all__ = [
    "Handle",
    "ablate_direction",
    "ablate_heads",
    "ablate_layers",
    "combine",
    "patch",
    "steer",
]
