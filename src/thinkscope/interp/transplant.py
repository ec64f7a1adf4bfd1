"""Cross-model direction transplantation: map a direction of model A into model B's space.

A least-squares affine map ``h_B ~ h_A W + b`` is fitted on the two models' block outputs for
the same inputs; a difference of means maps by ``W`` alone (the bias cancels), so a direction
``v_A`` becomes ``v_A W`` and can steer model B.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thinkscope.core.errors import UserError
from thinkscope.interp.directions import Directions


@dataclass
class LinearMap:
    """``h_B ~ h_A @ weight + bias``; ``r2``: fraction of B's variance explained on the fit set."""

    weight: np.ndarray  # [d_A, d_B]
    bias: np.ndarray  # [d_B]
    r2: float


def fit_map(rows_a, rows_b, ridge: float = 0.0) -> LinearMap:
    """Least-squares affine map from ``rows_a`` ``[N, d_A]`` to ``rows_b`` ``[N, d_B]``
    (``ridge`` > 0 adds an L2 penalty on ``weight`` of ``ridge`` times the mean eigenvalue of
    the centred ``rows_a`` Gram matrix, for N not much larger than d_A)."""
    a, b = np.asarray(rows_a, dtype=np.float64), np.asarray(rows_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b) or len(a) < 2:
        raise UserError(f"a map needs two [N, d] arrays of the same N >= 2: {a.shape}, {b.shape}")
    mean_a, mean_b = a.mean(0), b.mean(0)
    xa, xb = a - mean_a, b - mean_b
    if ridge > 0:
        gram = xa.T @ xa
        penalty = ridge * np.trace(gram) / a.shape[1]
        weight = np.linalg.solve(gram + penalty * np.eye(a.shape[1]), xa.T @ xb)
    else:
        weight = np.linalg.lstsq(xa, xb, rcond=None)[0]
    residual = ((xb - xa @ weight) ** 2).sum()
    total = (xb**2).sum()
    return LinearMap(
        weight, mean_b - mean_a @ weight, float(1 - residual / total) if total else 1.0
    )


def transplant(directions: Directions, maps: dict[int, LinearMap], model: str) -> Directions:
    """``directions`` (of model A) mapped layer by layer into ``model``'s space."""
    missing = [layer for layer in directions.layers if layer not in maps]
    if missing:
        raise UserError(f"no map was fitted for layers {missing}")
    raw = np.stack(
        [directions.raw[k] @ maps[layer].weight for k, layer in enumerate(directions.layers)]
    )
    meta = {**directions.meta, "transplanted_from": directions.model}
    meta["map_r2"] = {str(layer): maps[layer].r2 for layer in directions.layers}
    return Directions(model, list(directions.layers), raw, directions.sets, directions.counts, meta)
