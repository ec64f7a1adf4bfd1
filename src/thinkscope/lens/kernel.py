"""The lens's per-row reductions, fused by ``torch.compile`` (Inductor) when it is worth it.

For layer logits ``z`` and the final distribution ``p`` of the same position the lens needs
the sums over the vocabulary ``sum q log q`` (q = softmax(z)) and ``sum s log s``
(s = p + q), and for KL ``sum p log q``; the JSD alone needs only the difference of the first
two, one sum. :func:`row_terms` gets them in two passes over each row, with two exps and one
log per element:

1. ``T = sum exp(z - shift)`` for a per-row ``shift``, which gives the log-normaliser
   ``lse = shift + log T`` in fp64;
2. with ``c`` the fp32 rounding of lse and ``r = lse - c``: ``q = exp(z - c) e^-r`` and
   ``log q = (z - c) - r``, and the sums of ``q log q``, ``s log s`` and ``p log q``
   (``z - c`` per element, ``r`` per row).

The shift saves the pass that would find each row's maximum. The lens passes the final
layer's log-normaliser of the same position (:func:`final_terms`), which on the bundled
model lies between 36 nats below a layer row's largest logit and 24 above it. Any shift from
about 85 nats
below the maximum to 40 above gives the same sums; a row whose ``T`` comes out non-finite or
under ``exp(-40)`` is redone with its maximum (:func:`row_sums`), so a bad guess costs time,
never digits. The exps of the first pass round ``z - shift`` at the size of the miss, so ``T``
can be ~1e-6 off; the JSD barely feels that (it moves by at most ln 2 / 2 times it), and the
entropies and KL divide by the sum of ``q`` as it came out, so they keep all digits.

Terms are fp32 and every sum is fp64. On CPU, Inductor converts fp32 to fp64 one element at
a time through memory (``at::vec`` has no vectorised float -> double conversion), so
:func:`folded_sums` first adds the ``FOLD`` equal column slices of the vocabulary pairwise in
fp32 (three roundings) and converts only ``V / FOLD`` partial sums. Plain fp32 sums would lose
the tail of small terms (Inductor adds V / 16 terms one after another per vector lane: the
JSD 2.7e-5 off on the bundled model's logits).

Inductor compiles each function into loops over rows: C++ with vectorised exp/log (Sleef) and
OpenMP on CPU, Triton on CUDA. No C is written or compiled by thinkscope itself: on CPU
Inductor calls the system C++ compiler (g++/clang) once per shape family and caches the
result under ``/tmp/torchinductor_$USER``. Shapes are dynamic, not unbacked (with unbacked
row counts Inductor does not fuse the passes); a block of one row runs eagerly, so no size-1
specialisation is compiled.

``0 log 0 = 0`` everywhere: a ``-inf`` logit (a masked vocabulary entry) has q = 0 and adds
nothing, so divergences stay finite (KL becomes ``inf`` only where p > 0 = q, as it should).

When it runs compiled (``THINKSCOPE_COMPILE``): ``auto`` (default) for vocabularies of at
least ``COMPILE_MIN_VOCAB`` entries (real models; tiny test models stay eager, so the test
suite does not pay Inductor's compile time), ``1`` always, ``0`` never; one-row blocks always
run eagerly. If compiling fails (no C++ compiler, an unsupported platform) the same functions
run eagerly, in slices of rows.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from typing import NamedTuple

import torch

COMPILE_MIN_VOCAB = 8192  # vocabulary size from which compiling pays off
EAGER_BYTES = 32 << 20  # eager fallback: rows per slice so that each temporary is <= 32 MB
FOLD = 8  # column slices added in fp32 before the fp64 sum (see folded_sums)
MIN_TOTAL = math.exp(-40.0)  # sum exp(z - shift) under this: the shift was too high


NEEDS = ("jsd", "entropy", "kl")  # what a caller needs, each including the ones before


class RowSums(NamedTuple):
    """Per-row results, each ``[R]`` float64 (fp32 rounding first would cost the JSD ~1e-6)."""

    gap: torch.Tensor  # sum q log q - sum s log s: JSD = ln 2 + (sum p log p + gap) / 2
    neg_hq: torch.Tensor | None  # sum q log q (needs "entropy")
    cross: torch.Tensor | None  # sum p log q (needs "kl")


def folded_sums(terms, *columns: torch.Tensor, fold: int = FOLD) -> tuple[torch.Tensor, ...]:
    """Row sums in fp64 of the fp32 tensors ``terms(*columns)`` (``[R, V]`` each), taken over
    the k equal column slices of ``columns`` (k: the largest power of two dividing both V and
    ``fold``) and added pairwise in fp32 first, so only ``V / k`` terms per row are converted."""
    vocab, k = columns[0].shape[-1], fold
    while vocab % k:
        k //= 2
    width = vocab // k
    parts = [terms(*(c[:, i * width : (i + 1) * width] for c in columns)) for i in range(k)]
    while len(parts) > 1:
        pairs = zip(parts[::2], parts[1::2], strict=True)
        parts = [tuple(a + b for a, b in zip(x, y, strict=True)) for x, y in pairs]
    return tuple(t.sum(-1, dtype=torch.float64) for t in parts[0])


def _normaliser(z: torch.Tensor, shift: torch.Tensor):
    """The first pass: ``T = sum exp(z - shift)`` ``[R]`` fp64, then the log-normaliser
    ``shift + log T`` as its fp32 rounding ``c`` ``[R, 1]`` and the rest ``r`` ``[R]`` fp64,
    and ``e^-r`` ``[R, 1]`` fp32 (``1 / sum exp(z - c)``, within 1e-6 of 1)."""
    (total,) = folded_sums(lambda zs: ((zs - shift[:, None]).exp(),), z)
    lse = shift.double() + total.log()
    c = lse.float()
    rest = lse - c.double()
    return total, c[:, None], rest, rest.neg().exp().float()[:, None]


def row_terms(z: torch.Tensor, p: torch.Tensor, rows: torch.Tensor, shift, need: str = "kl"):
    """The sums behind :class:`RowSums` for logits ``z`` ``[R, V]`` against ``p[rows]``, with
    ``shift`` ``[R]`` (see the module docstring): ``T = sum exp(z - shift)``, then the fields
    of :class:`RowSums` that ``need`` asks for. Each ``[R]`` float64 from fp32 terms: with
    ``c`` the fp32 rounding of the log-normaliser and ``r`` the rest of it,
    ``log q = (z - c) - r``; the terms take ``z - c`` and ``r`` is subtracted per row."""
    z = z.float()
    total, c, rest, inv = _normaliser(z, shift)
    pr = p.index_select(0, rows)

    def terms(zs, ps):
        zc = zs - c
        q = zc.exp() * inv
        s = q + ps
        q_zc = torch.where(q > 0, q * zc, 0.0)
        s_ls = torch.where(s > 0, s * s.log(), 0.0)
        if need == "jsd":  # the same gap in every mode, so the depths of settle() match
            return (q_zc - s_ls,)
        if need == "entropy":
            return q_zc - s_ls, q_zc, q
        return q_zc - s_ls, q_zc, q, torch.where(ps > 0, ps * zc, 0.0)

    sums = folded_sums(terms, z, pr)
    gap = sums[0] - rest
    if need == "jsd":
        return total, gap
    # the entropies and KL take the sum of q as it came out (within ~1e-6 of 1: the exps of
    # the first pass round z - shift at the size of the shift's miss), so they keep all digits
    mass = sums[2]
    neg_hq = sums[1] / mass - rest - mass.log()
    if need == "entropy":
        return total, gap, neg_hq
    return total, gap, neg_hq, sums[3] - rest - mass.log()


def row_sums(
    z: torch.Tensor,
    p: torch.Tensor,
    rows: torch.Tensor,
    need: str = "kl",
    shift: torch.Tensor | None = None,
    terms=row_terms,
) -> RowSums:
    """Logits ``z`` ``[R, V]`` against final probabilities ``p[rows]`` (``p`` ``[N, V]``,
    ``rows`` int64 ``[R]``) -> :class:`RowSums` with what ``need`` asks for (``NEEDS``).
    ``shift`` ``[R]`` (default: each row's maximum) is a guess of each row's log-normaliser;
    rows it does not suit are redone, eagerly, with their maximum. ``terms`` computes
    :func:`row_terms` (compiled or not)."""
    total, *sums = terms(z, p, rows, z.amax(-1) if shift is None else shift, need)
    bad = ~(total.isfinite() & (total > MIN_TOTAL))
    if bad.any():
        _, *redone = row_terms(z[bad], p, rows[bad], z[bad].amax(-1), need)
        for column, value in zip(sums, redone, strict=True):
            column[bad] = value
    return RowSums(*sums, *[None] * (3 - len(sums)))


class Final(NamedTuple):
    """The final layer's distribution, per row."""

    p: torch.Tensor  # [n, V] fp32 probabilities
    lse: torch.Tensor  # [n] fp32 log-normaliser: log p = z - lse (to fp32 rounding)
    neg_h: torch.Tensor  # [n] fp64 sum p log p
    total: torch.Tensor  # [n] fp64 sum z (the mean log-prob is total / V - lse)


def final_terms(z: torch.Tensor) -> Final:
    """Final-layer logits ``z`` ``[n, V]`` -> :class:`Final`, in two passes over each row:
    ``T = sum exp(z - max)``, then ``p`` and its sums, with the log-normaliser applied as in
    :func:`row_terms` (its fp32 rounding ``c`` per element, the rest per row)."""
    z = z.float()
    _, c, rest, inv = _normaliser(z, z.amax(-1))
    zc = z - c
    prob = zc.exp() * inv
    p_zc, z_sum = folded_sums(
        lambda ps, zs, zcs: (torch.where(ps > 0, ps * zcs, 0.0), zs), prob, z, zc
    )
    return Final(prob, c.squeeze(-1), p_zc - rest, z_sum)


def mode() -> str:
    """``THINKSCOPE_COMPILE``: ``auto``, ``1`` or ``0``."""
    value = os.environ.get("THINKSCOPE_COMPILE", "auto").lower()
    return value if value in ("auto", "1", "0") else "auto"


@functools.cache
def _compiled(fn):
    return torch.compile(fn, dynamic=True)


_FAILED: list[str] = []  # the first compile error, once one happened: eager from then on


def _run(z: torch.Tensor, compiled, eager):
    """``compiled()`` when :func:`mode` says so for logits ``z`` and compiling works, else
    ``eager()``."""
    want = mode() == "1" or (mode() == "auto" and z.shape[-1] >= COMPILE_MIN_VOCAB)
    if not want or _FAILED or len(z) < 2:
        return eager()
    try:
        return compiled()
    except Exception as err:  # noqa: BLE001 - no compiler, unsupported backend, ...
        _FAILED.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
        warnings.warn(
            f"torch.compile of the lens kernel failed ({_FAILED[0]}); using eager torch ops",
            RuntimeWarning,
            stacklevel=3,
        )
        return eager()


def _eager(z, p, rows, need, shift) -> RowSums:
    step = max(1, EAGER_BYTES // (4 * z.shape[-1]))
    parts = [
        row_sums(z[r], p, rows[r], need, None if shift is None else shift[r])
        for r in (slice(i, i + step) for i in range(0, len(z), step))
    ]
    columns = zip(*parts, strict=True)
    return RowSums(*(None if column[0] is None else torch.cat(column) for column in columns))


def fused(
    z: torch.Tensor,
    p: torch.Tensor,
    rows: torch.Tensor,
    need: str = "kl",
    shift: torch.Tensor | None = None,
) -> RowSums:
    """:func:`row_sums`, compiled when :func:`mode` says so and compiling works, else eager."""
    if need not in NEEDS:
        raise ValueError(f"need must be one of {NEEDS}, got {need!r}")
    return _run(
        z,
        lambda: row_sums(z, p, rows, need, shift, terms=_compiled(row_terms)),
        lambda: _eager(z, p, rows, need, shift),
    )


def final(z: torch.Tensor) -> Final:
    """:func:`final_terms`, compiled when :func:`mode` says so and compiling works, else eager."""
    return _run(z, lambda: _compiled(final_terms)(z), lambda: final_terms(z))


def backend(device: torch.device | str = "cpu") -> str:
    """What :func:`fused` runs for large blocks on ``device``: ``inductor-cpp``,
    ``inductor-triton`` or ``eager``."""
    if mode() == "0" or _FAILED:
        return "eager"
    return "inductor-triton" if torch.device(device).type == "cuda" else "inductor-cpp"
