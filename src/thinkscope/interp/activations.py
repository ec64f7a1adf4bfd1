"""Stream block outputs into float64 running statistics or memory-mapped rows.

``collect`` never holds a large set's activations: each batch's block outputs ``[B, T, d]``
are reduced in the forward hook to one row ``[d]`` per sequence and layer, merged into a
running mean and (on request) co-moment matrix in float64 (Chan et al.'s pairwise update),
and, when the caller wants rows, written into a ``.npy`` memory map ``[N, n_layers, d]``.
The forward pass stops after the deepest requested block. Memory is O(batch * T * d) for the
batch plus O(n_layers * d^2) for a covariance, whatever N is (``benchmarks/collect.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from thinkscope.core.errors import UserError
from thinkscope.core.progress import progress_bar
from thinkscope.models import LM
from thinkscope.models.hooks.base import check_layers
from thinkscope.models.hooks.points import capture, forward, output_tensor, stop_after
from thinkscope.runstore.folder import Run

POSITIONS = ("last", "mean", "completion")


@dataclass(frozen=True)
class TokenSeq:
    """Token ids of one input; ``start`` is where its completion begins (None: plain text)."""

    ids: tuple[int, ...]
    start: int | None = None


@dataclass
class RunningStats:
    """Mean and co-moment of rows ``[d]`` per layer, merged batch by batch in float64."""

    layers: list[int]
    count: int
    mean: np.ndarray  # [n_layers, d] float64
    comoment: np.ndarray | None  # [n_layers, d, d] float64: sum of (x - mean)(x - mean)^T

    @classmethod
    def empty(cls, layers: list[int], d: int, covariance: bool) -> RunningStats:
        n = len(layers)
        return cls(layers, 0, np.zeros((n, d)), np.zeros((n, d, d)) if covariance else None)

    def update(self, rows: np.ndarray) -> None:
        """Merge a batch ``rows`` ``[B, n_layers, d]``."""
        b = rows.shape[0]
        if b == 0:
            return
        x = rows.astype(np.float64)
        batch_mean = x.mean(axis=0)
        total = self.count + b
        delta = batch_mean - self.mean
        if self.comoment is not None:
            centred = x - batch_mean
            self.comoment += np.einsum("bld,ble->lde", centred, centred)
            self.comoment += np.einsum("ld,le->lde", delta, delta) * (self.count * b / total)
        self.mean += delta * (b / total)
        self.count = total

    @property
    def covariance(self) -> np.ndarray:
        """Sample covariance ``[n_layers, d, d]`` (denominator N - 1)."""
        if self.comoment is None:
            raise UserError("collect(..., covariance=True) is needed for a covariance")
        if self.count < 2:
            raise UserError("a covariance needs at least two sequences")
        return self.comoment / (self.count - 1)


def sequences_from_texts(lm: LM, texts: Sequence[str]) -> list[TokenSeq]:
    """Tokenize plain texts (special tokens as the tokenizer adds them)."""
    out = [TokenSeq(tuple(lm.tokenizer(t)["input_ids"])) for t in texts]
    if any(not s.ids for s in out):
        raise UserError("an input text tokenizes to nothing; drop empty texts")
    return out


def sequences_from_run(path: Path | str) -> tuple[list[TokenSeq], np.ndarray]:
    """Prompt + completion of every trace of a run folder, and ``correct`` ``[N]`` bool."""
    traces = Run.open(path).traces()
    seqs = [
        TokenSeq(tuple(int(i) for i in p) + tuple(int(i) for i in t), len(p))
        for p, t in zip(traces["prompt_ids"], traces["token_ids"], strict=True)
    ]
    return seqs, traces["correct"].to_numpy(dtype=bool)


def _as_sequences(lm: LM, source) -> list[TokenSeq]:
    if isinstance(source, Run):
        source = source.path
    if isinstance(source, (str, Path)):
        if not Path(source).is_dir():
            raise UserError(f"{source} is not a run folder; pass a list of texts for plain inputs")
        return sequences_from_run(source)[0]
    items = list(source)
    if items and all(isinstance(i, TokenSeq) for i in items):
        return items
    return sequences_from_texts(lm, [str(t) for t in items])


def _reduce(h: torch.Tensor, real: torch.Tensor, starts: torch.Tensor, how: str) -> torch.Tensor:
    """One row ``[B, d]`` per sequence from right-padded states ``h`` ``[B, T, d]``."""
    if how == "last":
        return h[torch.arange(h.shape[0]), real.sum(1) - 1]
    keep = real & (torch.arange(h.shape[1], device=h.device) >= starts[:, None])
    weights = keep.to(h.dtype).unsqueeze(-1)
    return (h * weights).sum(1) / weights.sum(1)


def batches(seqs: list[TokenSeq], batch_size: int) -> Iterator[list[int]]:
    for begin in range(0, len(seqs), batch_size):
        yield list(range(begin, min(begin + batch_size, len(seqs))))


@torch.no_grad()
def batch_rows(lm: LM, seqs: list[TokenSeq], layers: list[int], how: str) -> torch.Tensor:
    """Reduced block outputs ``[B, n_layers, d]`` (float32) of one batch, right-padded."""
    width, pad = max(len(s.ids) for s in seqs), lm.tokenizer.pad_token_id or 0
    ids = torch.tensor([list(s.ids) + [pad] * (width - len(s.ids)) for s in seqs])
    real = torch.tensor([[1] * len(s.ids) + [0] * (width - len(s.ids)) for s in seqs]).bool()
    starts = torch.tensor([s.start or 0 for s in seqs])

    def pooled(output) -> torch.Tensor:
        h = output_tensor(output)
        return _reduce(h, real.to(h.device), starts.to(h.device), how).float().cpu()

    with capture(lm, layers, pooled) as rows, stop_after(lm, layers[-1]):
        forward(
            lm,
            input_ids=ids.to(lm.device),
            attention_mask=real.long().to(lm.device),
            use_cache=False,
        )
    return torch.stack([rows[layer][0] for layer in layers], dim=1)


def collect(
    lm: LM,
    texts_or_run,
    layers: Sequence[int] | None = None,
    positions: str = "last",
    covariance: bool = False,
    rows: Path | str | None = None,
    batch_size: int = 16,
    show_progress: bool = False,
) -> RunningStats:
    """Running statistics of block outputs over a set of inputs.

    ``texts_or_run``: texts, :class:`TokenSeq` items, or a run folder (prompt + completion of
    each trace). ``positions``: ``last`` real token, ``mean`` over real tokens, or
    ``completion`` (mean over the tokens from each sequence's ``start``). With ``rows`` (a
    ``.npy`` path) every row is also written to a memory map ``[N, n_layers, d]`` float32,
    under a temporary name renamed when complete.
    """
    if positions not in POSITIONS:
        raise UserError(f"unknown positions {positions!r}; choose one of {', '.join(POSITIONS)}")
    seqs = _as_sequences(lm, texts_or_run)
    if not seqs:
        raise UserError("collect needs at least one input")
    if positions == "completion" and any(s.start is None or s.start >= len(s.ids) for s in seqs):
        raise UserError("positions='completion' needs a run's traces with non-empty completions")
    chosen = check_layers(lm, layers if layers is not None else range(1, lm.n_layers + 1))
    d = lm.anatomy.unembed.weight.shape[1]
    stats = RunningStats.empty(chosen, d, covariance)
    memmap, tmp = None, None
    if rows is not None:
        target = Path(rows)
        tmp = target.with_name(target.name + ".partial.npy")
        memmap = np.lib.format.open_memmap(tmp, "w+", np.float32, (len(seqs), len(chosen), d))
    with progress_bar("collect", "sequences", show_progress) as progress:
        bar = progress.add_task("collect", total=len(seqs))
        for index in batches(seqs, batch_size):
            batch = batch_rows(lm, [seqs[i] for i in index], chosen, positions).numpy()
            stats.update(batch)
            if memmap is not None:
                memmap[index[0] : index[-1] + 1] = batch
            progress.advance(bar, len(index))
    if memmap is not None:
        memmap.flush()
        del memmap
        tmp.replace(target)
    return stats


def load_rows(path: Path | str) -> np.ndarray:
    """The rows ``[N, n_layers, d]`` a :func:`collect` call wrote, memory-mapped read-only."""
    return np.load(Path(path), mmap_mode="r")


@torch.no_grad()
def record(lm: LM, texts: Sequence[str], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """Block outputs ``{l: [B, T, d]}`` of texts of equal token length (for :func:`patch`)."""
    seqs = sequences_from_texts(lm, texts)
    if len({len(s.ids) for s in seqs}) != 1:
        raise UserError("record needs texts of the same token length (patching is positional)")
    chosen = check_layers(lm, layers)
    ids = torch.tensor([list(s.ids) for s in seqs], device=lm.device)
    with lm.record_blocks() as states:
        lm.model(input_ids=ids, use_cache=False)
    return {layer: states[layer - 1].detach().clone() for layer in chosen}
