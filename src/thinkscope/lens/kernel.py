"""The lens's per-row reduction, fused by ``torch.compile`` (Inductor) when it is worth it.

For layer logits ``z`` and the final distribution ``p`` of the same position the lens needs
three sums over the vocabulary: ``sum q log q`` (q = softmax(z)), ``sum s log s`` (s = p + q)
and ``sum p log q``. Written as torch ops they are about ten passes over every ``[R, V]``
block with as many temporaries; Inductor fuses them into one kernel per block: C++ with
vectorised exp/log (Sleef) and OpenMP on CPU, Triton on CUDA. No C is written or compiled by
thinkscope itself: on CPU Inductor calls the system C++ compiler (g++/clang) once per shape
family and caches the result under ``/tmp/torchinductor_$USER``.

``0 log 0 = 0`` everywhere: a ``-inf`` logit (a masked vocabulary entry) has q = 0 and adds
nothing, so divergences stay finite (KL becomes ``inf`` only where p > 0 = q, as it should).

When it runs compiled (``THINKSCOPE_COMPILE``): ``auto`` (default) for blocks of at least
``COMPILE_MIN`` elements (the bundled model; tiny test models stay eager, so the test suite
does not pay Inductor's compile time), ``1`` always, ``0`` never. If compiling fails (no C++
compiler, an unsupported platform) the same function runs eagerly, in slices of rows.
"""

from __future__ import annotations

import functools
import os
import warnings

import torch
import torch._dynamo.decorators

COMPILE_MIN = 1 << 22  # elements per call (16 MB of fp32 logits) before compiling pays off
EAGER_BYTES = 32 << 20  # eager fallback: rows per slice so that each temporary is <= 32 MB


def row_sums(
    z: torch.Tensor, p: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``z`` ``[R, V]`` against final probabilities ``p[rows]`` (``p`` ``[N, V]``,
    ``rows`` int64 ``[R]``) -> ``sum q log q``, ``sum s log s``, ``sum p log q``, each ``[R]``
    float32 (terms in fp32 whatever ``z``'s dtype, accumulated in fp64)."""
    a = torch.log_softmax(z.float(), -1)
    q = a.exp()
    pr = p.index_select(0, rows)
    s = q + pr
    f64 = torch.float64  # fp32 terms, fp64 sums: JSD cancels sums of size ~log V to ~1e-6
    neg_hq = torch.where(q > 0, q * a, 0.0).sum(-1, dtype=f64)
    sls = torch.where(s > 0, s * s.log(), 0.0).sum(-1, dtype=f64)
    cross = torch.where(pr > 0, pr * a, 0.0).sum(-1, dtype=f64)
    return neg_hq.float(), sls.float(), cross.float()


def mode() -> str:
    """``THINKSCOPE_COMPILE``: ``auto``, ``1`` or ``0``."""
    value = os.environ.get("THINKSCOPE_COMPILE", "auto").lower()
    return value if value in ("auto", "1", "0") else "auto"


@functools.cache
def _compiled():
    return torch.compile(row_sums, dynamic=True)


_FAILED: list[str] = []  # the first compile error, once one happened: eager from then on


def _eager(z, p, rows):
    step = max(1, EAGER_BYTES // (4 * z.shape[-1]))
    parts = [row_sums(z[i : i + step], p, rows[i : i + step]) for i in range(0, len(z), step)]
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))


def fused(z: torch.Tensor, p: torch.Tensor, rows: torch.Tensor):
    """:func:`row_sums`, compiled when :func:`mode` says so and compiling works, else eager."""
    want = mode() == "1" or (mode() == "auto" and z.numel() >= COMPILE_MIN)
    if not want or _FAILED or len(z) == 0:
        return _eager(z, p, rows)
    torch._dynamo.decorators.mark_unbacked(z, 0)  # any row count, 1 included, shares one kernel
    torch._dynamo.decorators.mark_unbacked(rows, 0)
    try:
        return _compiled()(z, p, rows)
    except Exception as err:  # noqa: BLE001 - no compiler, unsupported backend, ...
        _FAILED.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
        warnings.warn(
            f"torch.compile of the lens kernel failed ({_FAILED[0]}); using eager torch ops",
            RuntimeWarning,
            stacklevel=2,
        )
        return _eager(z, p, rows)


def backend(device: torch.device | str = "cpu") -> str:
    """What :func:`fused` runs for large blocks on ``device``: ``inductor-cpp``,
    ``inductor-triton`` or ``eager``."""
    if mode() == "0" or _FAILED:
        return "eager"
    return "inductor-triton" if torch.device(device).type == "cuda" else "inductor-cpp"
