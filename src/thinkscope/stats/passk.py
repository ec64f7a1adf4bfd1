"""pass@k, the unbiased estimator of Chen et al. (2021), the one definition thinkscope reports.

For a question with ``c`` correct of ``n`` samples, pass@k is the probability that a random
k-subset of the n samples holds a correct one: ``1 - C(n-c, k) / C(n, k)``. At k = 1 it is
``c / n``, the question's mean sample accuracy; at k = n it is "any sample correct". Tables
name the mean over samples ``mean_sample_accuracy`` and keep ``pass@k`` for this estimator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from thinkscope.core.errors import UserError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question with ``c`` correct of ``n`` samples, computed as the
    product ``1 - prod_{i=n-c+1..n} (1 - k/i)`` (no large binomials)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise UserError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(problem_ids: Iterable, correct: Iterable, k: int) -> float:
    """pass@k averaged over questions, from one ``(problem_id, correct)`` pair per sample
    (e.g. a run's ``problem_id`` and ``correct`` columns); every question needs k samples."""
    counts: dict = defaultdict(lambda: [0, 0])
    for problem, ok in zip(problem_ids, correct, strict=True):
        counts[problem][0] += 1
        counts[problem][1] += bool(ok)
    if not counts:
        raise UserError("pass@k needs at least one graded sample")
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts.values()]))
