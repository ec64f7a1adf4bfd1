"""Linear CKA (Kornblith et al. 2019) and its minibatch estimator (Nguyen et al. 2021).

``linear_cka(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with ``K = X X^T``,
``L = Y Y^T`` centred (``HKH``, ``H = I - 11^T / n``): invariant to orthogonal transforms and
isotropic scaling of either representation, 1 for ``CKA(X, X)``. For sets too large for an
``n x n`` Gram matrix, :class:`MinibatchCKA` averages the unbiased HSIC estimator (Song et al.
2012) over minibatches; the ratio converges to the full-set CKA as batches grow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from thinkscope.core.errors import UserError


def _centred_gram(x: np.ndarray) -> np.ndarray:
    """``H X X^T H`` ``[n, n]`` (float64) of rows ``x`` ``[n, d]``."""
    k = x @ x.T
    return k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()


def _check(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise UserError(
            f"CKA needs [n, d] and [n, d'] arrays with the same n: {x.shape}, {y.shape}"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UserError("CKA inputs hold NaN or infinite values")
    return x, y


def linear_cka(x, y) -> float:
    """Linear CKA of representations ``x`` ``[n, d]`` and ``y`` ``[n, d']`` of the same n inputs."""
    x, y = _check(x, y)
    k, l_ = _centred_gram(x), _centred_gram(y)
    denom = np.sqrt((k * k).sum() * (l_ * l_).sum())
    if denom == 0:
        raise UserError("CKA is undefined for a constant representation")
    return float((k * l_).sum() / denom)


def unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Unbiased HSIC estimator (Song et al. 2012) of Gram matrices ``[n, n]``, n >= 4."""
    n = k.shape[0]
    if n < 4:
        raise UserError("the unbiased HSIC estimator needs minibatches of at least 4 inputs")
    k, l_ = k.copy(), l_.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l_, 0)
    ones_k, ones_l = k.sum(0), l_.sum(0)
    value = (k * l_).sum() + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2))
    value -= 2 * (ones_k @ ones_l) / (n - 2)
    return float(value / (n * (n - 3)))


class MinibatchCKA:
    """Accumulates CKA between every layer of A and every layer of B, minibatch by minibatch."""

    def __init__(self, n_a: int, n_b: int) -> None:
        self.xy = np.zeros((n_a, n_b))
        self.xx, self.yy = np.zeros(n_a), np.zeros(n_b)
        self.batches = 0

    def update(self, xs, ys) -> None:
        """Add a minibatch: ``xs`` ``[B, n_a, d]``, ``ys`` ``[B, n_b, d2]`` of the same inputs."""
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        grams_x = [xs[:, i] @ xs[:, i].T for i in range(xs.shape[1])]
        grams_y = [ys[:, j] @ ys[:, j].T for j in range(ys.shape[1])]
        for i, k in enumerate(grams_x):
            self.xx[i] += unbiased_hsic(k, k)
            for j, l_ in enumerate(grams_y):
                self.xy[i, j] += unbiased_hsic(k, l_)
        for j, l_ in enumerate(grams_y):
            self.yy[j] += unbiased_hsic(l_, l_)
        self.batches += 1

    def result(self) -> np.ndarray:
        """CKA ``[n_a, n_b]``."""
        if not self.batches:
            raise UserError("no minibatches were added")
        return self.xy / np.sqrt(np.outer(self.xx, self.yy))


def cka_matrix(rows_a, rows_b, batch_size: int | None = None, seed: int = 0) -> np.ndarray:
    """CKA ``[n_a, n_b]`` between every layer of ``rows_a`` ``[N, n_a, d]`` and of ``rows_b``
    ``[N, n_b, d']`` (the same N inputs): exact, or minibatched (shuffled) with ``batch_size``."""
    if len(rows_a) != len(rows_b):
        raise UserError(f"CKA needs the same inputs in both sets: {len(rows_a)} vs {len(rows_b)}")
    if batch_size is None:
        return np.array(
            [
                [linear_cka(rows_a[:, i], rows_b[:, j]) for j in range(rows_b.shape[1])]
                for i in range(rows_a.shape[1])
            ]
        )
    order = np.random.default_rng(seed).permutation(len(rows_a))
    acc = MinibatchCKA(rows_a.shape[1], rows_b.shape[1])
    for begin in range(0, len(order) - batch_size + 1, batch_size):
        index = np.sort(order[begin : begin + batch_size])
        acc.update(rows_a[index], rows_b[index])
    return acc.result()


def cka_table(cka: np.ndarray, layers_a, layers_b) -> pd.DataFrame:
    """CKA ``[n_a, n_b]`` labelled by layer: one row per layer of model A (index ``layer_a``),
    one column per layer of model B (named by its layer number), as ``cka.csv`` stores it."""
    layers_a, layers_b = list(layers_a), list(layers_b)
    if cka.shape != (len(layers_a), len(layers_b)):
        raise UserError(f"CKA {cka.shape} does not match {len(layers_a)} x {len(layers_b)} layers")
    return pd.DataFrame(cka, index=pd.Index(layers_a, name="layer_a"), columns=layers_b)


def heatmap(cka: np.ndarray, layers_a, layers_b, name_a: str, name_b: str) -> Figure:
    """Layer-by-layer CKA heatmap (rows: ``name_a``'s layers, columns: ``name_b``'s)."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    image = ax.imshow(cka, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(layers_b)), [str(x) for x in layers_b], fontsize=7)
    ax.set_yticks(range(len(layers_a)), [str(x) for x in layers_a], fontsize=7)
    ax.set_xlabel(f"{name_b} layer")
    ax.set_ylabel(f"{name_a} layer")
    ax.set_title("linear CKA")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig
