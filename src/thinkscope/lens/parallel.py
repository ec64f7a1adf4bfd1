"""Run the lens on CPU as W independent single-threaded workers instead of W-thread ops.

The lens's elementwise work is thousands of small ops on cache-sized blocks. As OpenMP
parallel regions each of them ends in a barrier, and on a shared machine a barrier waits for a
descheduled thread: measured here at load 4 on 2 cores, 128 tokens of SmolLM2 took 23-28 s
with 2-thread ops on 8-row blocks and 1.4-4.5 s with two single-threaded workers. PyTorch
releases the GIL inside every op, so W Python threads running 1-thread ops use W cores with no
barrier at all, and each worker keeps its own rows in its own core's cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch


@contextlib.contextmanager
def single_threaded_ops() -> Iterator[None]:
    """Set torch's intra-op threads to 1 for the block (process-wide), then restore them."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_workers(
    n_pos: int,
    block: int,
    device: torch.device,
    make: Callable[[], object],
    task: Callable[[object, torch.Tensor], None],
) -> None:
    """Call ``task(state, positions)`` on blocks of at most ``block`` positions ``[n]``.

    On CPU, worker w of W = ``torch.get_num_threads()`` takes positions w, w+W, ... (an even
    share of easy and hard tokens for the fast path) with its own ``state = make()``; on other
    devices one worker takes 0..N-1 in order.
    """
    if n_pos == 0:
        return
    workers = torch.get_num_threads() if device.type == "cpu" else 1
    workers = max(1, min(workers, n_pos))
    shares = [torch.arange(w, n_pos, workers, device=device) for w in range(workers)]

    def work(share: torch.Tensor) -> None:
        with torch.no_grad():  # grad mode is per thread
            state = make()
            for positions in share.split(block):
                task(state, positions)

    if workers == 1:
        for share in shares:
            work(share)
        return
    with single_threaded_ops(), ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(work, share) for share in shares]:
            future.result()
