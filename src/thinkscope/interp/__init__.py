"""Interpretability toolbox (seed 002): streaming activations, difference-in-means directions,
probes, CKA, and interventions (steering, ablation, patching) as removable hooks.

>>> from thinkscope.interp import collect, diff_in_means, steer
>>> a, b = collect(lm, reasoning, positions="last"), collect(lm, control, positions="last")
>>> dirs = diff_in_means(a, b, lm.name, ("reasoning", "control"))
>>> with steer(lm, {15: dirs.at(15, unit=False)}, alpha=4.0):
...     lm.model.generate(...)
"""

from thinkscope.interp.activations import RunningStats, collect, load_rows, record
from thinkscope.interp.cka import MinibatchCKA, cka_matrix, linear_cka
from thinkscope.interp.directions import Directions, cosine_matrix, decode, diff_in_means
from thinkscope.interp.probes import probe_layers
from thinkscope.interp.transplant import LinearMap, fit_map, transplant
from thinkscope.models.hooks.interventions import (
    ablate_direction,
    ablate_heads,
    ablate_layers,
    patch,
    steer,
)
from thinkscope.models.hooks.points import Handle, combine

__all__ = [
    "Directions",
    "Handle",
    "LinearMap",
    "MinibatchCKA",
    "RunningStats",
    "ablate_direction",
    "ablate_heads",
    "ablate_layers",
    "cka_matrix",
    "collect",
    "combine",
    "cosine_matrix",
    "decode",
    "diff_in_means",
    "fit_map",
    "linear_cka",
    "load_rows",
    "patch",
    "probe_layers",
    "record",
    "steer",
    "transplant",
]
