"""The lens's per-row reduction, fused by ``torch.compile`` (Inductor) when it is worth it.

For layer logits ``z`` and the final distribution ``p`` of the same position the lens needs
the sums over the vocabulary ``sum q log q`` (q = softmax(z)) and ``sum s log s``
(s = p + q), and for KL ``sum p log q``; the JSD alone needs only the difference of the first
two, one sum. :func:`row_terms` writes them so that one exp and one log per element suffice:
with ``m = max z``, ``e = exp(z - m)`` and ``T = sum e``,
``q = e / T`` and ``log q = (z - m) - log T``, so ``sum q log q = sum q (z - m) - log T`` and
``sum p log q = sum p (z - m) - log T sum p``; ``log T`` is applied per row afterwards
(:func:`row_sums`). Inductor compiles it into one loop over rows that makes three passes over
each row while it is in cache (max; exp into a row-sized local buffer and its sum; the fused
sums): C++ with vectorised exp/log (Sleef) and OpenMP on CPU, Triton on CUDA. No C is
written or compiled by thinkscope itself: on CPU Inductor calls the system C++ compiler
(g++/clang) once per shape family and caches the result under ``/tmp/torchinductor_$USER``.

The terms are fp32 and every sum is fp64. fp32 sums cost a third less, but Inductor adds
V / 16 terms one after another per vector lane, so the tail of small terms is lost: on the
bundled model's logits that put the JSD 2.7e-5 and the entropies 1e-5 off the float64
reference (fp64 sums: 1.4e-6 and 1.4e-7).

Shapes are dynamic, not unbacked: with unbacked row counts Inductor keeps the three passes as
separate loops over the whole block, each reading all of it from memory (4x slower on one
thread for a ``[510, 49152]`` block); a block of one row runs eagerly, so no size-1
specialisation is compiled.

``0 log 0 = 0`` everywhere: a ``-inf`` logit (a masked vocabulary entry) has q = 0 and adds
nothing, so divergences stay finite (KL becomes ``inf`` only where p > 0 = q, as it should).

When it runs compiled (``THINKSCOPE_COMPILE``): ``auto`` (default) for vocabularies of at
least ``COMPILE_MIN_VOCAB`` entries (real models; tiny test models stay eager, so the test
suite does not pay Inductor's compile time), ``1`` always, ``0`` never; one-row blocks always
run eagerly. If compiling fails (no C++ compiler, an unsupported platform) the same function
runs eagerly, in slices of rows.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import NamedTuple

import torch

COMPILE_MIN_VOCAB = 8192  # vocabulary size from which compiling pays off
EAGER_BYTES = 32 << 20  # eager fallback: rows per slice so that each temporary is <= 32 MB


NEEDS = ("jsd", "entropy", "kl")  # what a caller needs, each including the ones before


class RowSums(NamedTuple):
    """Per-row results, each ``[R]`` float64 (fp32 rounding first would cost the JSD ~1e-6)."""

    gap: torch.Tensor  # sum q log q - sum s log s: JSD = ln 2 + (sum p log p + gap) / 2
    neg_hq: torch.Tensor | None  # sum q log q (needs "entropy")
    cross: torch.Tensor | None  # sum p log q (needs "kl")


def row_terms(z: torch.Tensor, p: torch.Tensor, rows: torch.Tensor, need: str = "kl"):
    """The vocabulary sums behind :class:`RowSums` for logits ``z`` ``[R, V]`` against
    ``p[rows]``: ``T`` and ``sum q (z-m) - s log s`` (``need="jsd"``); ``T``, ``sum q (z-m)``
    and ``sum s log s`` (``"entropy"``); and also ``sum p (z-m)`` and ``sum p`` (``"kl"``).
    Each ``[R]`` float64 from fp32 terms (see the module docstring)."""
    f64 = torch.float64
    z = z.float()
    m = z.amax(-1, keepdim=True)
    zm = z - m
    e = zm.exp()
    total = e.sum(-1, keepdim=True, dtype=f64)
    q = e * total.reciprocal().float()
    pr = p.index_select(0, rows)
    s = q + pr
    q_zm = torch.where(q > 0, q * zm, 0.0)
    s_ls = torch.where(s > 0, s * s.log(), 0.0)
    if need == "jsd":
        return total.squeeze(-1), (q_zm - s_ls).sum(-1, dtype=f64)
    sums = (total.squeeze(-1), q_zm.sum(-1, dtype=f64), s_ls.sum(-1, dtype=f64))
    if need == "kl":
        sums += (torch.where(pr > 0, pr * zm, 0.0).sum(-1, dtype=f64), pr.sum(-1, dtype=f64))
    return sums


def row_sums(
    z: torch.Tensor, p: torch.Tensor, rows: torch.Tensor, need: str = "kl", terms=row_terms
) -> RowSums:
    """Logits ``z`` ``[R, V]`` against final probabilities ``p[rows]`` (``p`` ``[N, V]``,
    ``rows`` int64 ``[R]``) -> :class:`RowSums` with what ``need`` asks for (``NEEDS``).
    ``terms`` computes :func:`row_terms` (compiled or not)."""
    total, *sums = terms(z, p, rows, need)
    log_total = total.log()  # log q = (z - m) - log T, and sum q = 1
    if need == "jsd":
        return RowSums(sums[0] - log_total, None, None)
    neg_hq, sls = sums[0] - log_total, sums[1]
    cross = sums[2] - log_total * sums[3] if need == "kl" else None
    return RowSums(neg_hq - sls, neg_hq, cross)


def mode() -> str:
    """``THINKSCOPE_COMPILE``: ``auto``, ``1`` or ``0``."""
    value = os.environ.get("THINKSCOPE_COMPILE", "auto").lower()
    return value if value in ("auto", "1", "0") else "auto"


@functools.cache
def _compiled():
    return torch.compile(row_terms, dynamic=True)


_FAILED: list[str] = []  # the first compile error, once one happened: eager from then on


def _eager(z, p, rows, need) -> RowSums:
    step = max(1, EAGER_BYTES // (4 * z.shape[-1]))
    parts = [row_sums(z[i : i + step], p, rows[i : i + step], need) for i in range(0, len(z), step)]
    columns = zip(*parts, strict=True)
    return RowSums(*(None if column[0] is None else torch.cat(column) for column in columns))


def fused(z: torch.Tensor, p: torch.Tensor, rows: torch.Tensor, need: str = "kl") -> RowSums:
    """:func:`row_sums`, compiled when :func:`mode` says so and compiling works, else eager."""
    if need not in NEEDS:
        raise ValueError(f"need must be one of {NEEDS}, got {need!r}")
    want = mode() == "1" or (mode() == "auto" and z.shape[-1] >= COMPILE_MIN_VOCAB)
    if not want or _FAILED or len(z) < 2:
        return _eager(z, p, rows, need)
    try:
        return row_sums(z, p, rows, need, terms=_compiled())
    except Exception as err:  # noqa: BLE001 - no compiler, unsupported backend, ...
        _FAILED.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
        warnings.warn(
            f"torch.compile of the lens kernel failed ({_FAILED[0]}); using eager torch ops",
            RuntimeWarning,
            stacklevel=2,
        )
        return _eager(z, p, rows, need)


def backend(device: torch.device | str = "cpu") -> str:
    """What :func:`fused` runs for large blocks on ``device``: ``inductor-cpp``,
    ``inductor-triton`` or ``eager``."""
    if mode() == "0" or _FAILED:
        return "eager"
    return "inductor-triton" if torch.device(device).type == "cuda" else "inductor-cpp"
