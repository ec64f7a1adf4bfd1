"""How the lens cuts its work into blocks: from the device and the memory it may use.

A block is one ``[rows, d] @ [d, V]`` product into a reused fp32 ``[rows, V]`` logits buffer,
then one fused reduction over it (``kernel.py``). On CPU 100 MB per buffer is enough: the
matmul floor of ``benchmarks/lens.py`` is the same at 512 and 1024 rows of V = 49,152, and
more rows only cost memory. On a GPU every block is a kernel launch, so blocks are as large
as a share of the free memory allows, and the DTR fast path multiplies several layers per
product instead of one (``layer_group``): a few large matmuls rather than L small ones.
:func:`plan_blocks` is pure arithmetic on a given budget, so it is tested on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CPU_BUDGET = 100 << 20  # bytes of fp32 logits per block on CPU
GPU_SHARE = 0.25  # of the device's free memory for one block (p, stats and outputs need more)
GPU_PRODUCTS = 4  # fast path on GPU: about this many layer groups per block of positions


@dataclass(frozen=True)
class BlockPlan:
    """Block sizes for one lens call."""

    rows: int  # logits rows per product (the buffer is [rows, V] fp32)
    profile_positions: int  # lens_profile: positions per block, all L layers of each
    settle_positions: int  # settle: positions per block
    layer_group: int  # settle: layers per product (1 = layer by layer, maximal skipping)


def memory_budget(device: torch.device) -> int:
    """Bytes one block may take: :data:`CPU_BUDGET` on CPU, a share of the free memory on CUDA."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * GPU_SHARE)
    return CPU_BUDGET


def plan_blocks(
    n_layers: int, vocab: int, budget: int, gpu: bool, chunk_rows: int | None = None
) -> BlockPlan:
    """Block sizes for a model with ``n_layers`` and ``vocab`` given ``budget`` bytes per
    logits buffer (``chunk_rows`` overrides the rows per product)."""
    rows = max(1, chunk_rows or budget // (4 * vocab))
    group = max(1, math.ceil((n_layers - 1) / GPU_PRODUCTS)) if gpu else 1
    group = min(group, rows)
    return BlockPlan(
        rows=rows,
        profile_positions=max(1, rows // n_layers),
        settle_positions=max(1, rows // group),
        layer_group=group,
    )
