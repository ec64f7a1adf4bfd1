"""The per-model calibration of ``apl`` and ``cud``, from a bundled control set (CC0 text).

- Circuit heads: every head of the A layers with softmax attention is zeroed in turn on
  :data:`ARITHMETIC` prompts; the top ``min(24, floor(20% of A*H))`` heads (at least one) by
  mean logit shift are the circuit.
- Thresholds: on the control set (``data/rev_control.txt``, plain descriptive sentences, licence
  in ``data/REV_CONTROL_LICENSE``), the shift of each layer's MLP mean-ablation and of each
  circuit head's zeroing; a layer or head is *active* in a trace when its shift exceeds the
  control mean plus one standard deviation (ddof 1).

The calibration is cached per model under ``$THINKSCOPE_CACHE/rev/`` (keyed by the model name,
a fingerprint of its unembedding, and the content of the control and arithmetic sets) and
recorded in ``scores.json`` beside the columns that used it.

Another control set (the seed's 1,200 wiki texts, say): :func:`read_control` reads a text file
(one text per non-empty line) or a JSONL file (a ``text`` field per line), and ``with
using_control(texts): ...`` makes it the control set of every calibration inside the block.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from thinkscope.core.atomic import write_json
from thinkscope.core.errors import UserError
from thinkscope.core.jsonl import read_objects
from thinkscope.core.paths import cache_dir
from thinkscope.metrics.rev.ablation import Ablation, head_plan, logit_shifts, mlp_plan
from thinkscope.models import LM

VERSION = 2
MAX_CIRCUIT = 24
CIRCUIT_SHARE = 0.2
ARITHMETIC = (
    "3 + 5 = 8. 7 + 2 = 9. 4 + 4 =",
    "12 - 7 = 5. 9 - 3 = 6. 8 - 5 =",
    "6 + 1 = 7. 2 + 6 = 8. 5 + 3 =",
    "What is 9 - 4? The answer is 5. What is 7 - 2? The answer is",
    "2 * 3 = 6. 4 * 2 = 8. 3 * 3 =",
    "1 + 8 = 9. 3 + 4 = 7. 6 + 2 =",
)


MIN_CONTROL = 2  # a standard deviation (ddof 1) needs two texts
_ACTIVE: ContextVar[tuple[str, ...] | None] = ContextVar("rev_control", default=None)


def control_texts() -> list[str]:
    """The control set: the one of :func:`using_control`, else the bundled non-reasoning
    sentences (CC0)."""
    if (active := _ACTIVE.get()) is not None:
        return list(active)
    text = resources.files("thinkscope.metrics").joinpath("data/rev_control.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


@contextmanager
def using_control(texts: Sequence[str]) -> Iterator[None]:
    """Make ``texts`` the control set of the calibrations (and :func:`control_texts`) inside
    the block."""
    token = _ACTIVE.set(tuple(texts))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def read_control(path: Path | str) -> list[str]:
    """The texts of a control file: ``.jsonl`` (a non-empty string ``text`` per line) or text
    (one per non-empty line); a one-line :class:`UserError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--control {path}: no such file")
    if path.suffix == ".jsonl":
        texts = []
        for number, row in read_objects(path):
            text = row.get("text")
            if not isinstance(text, str) or not text.strip():
                raise UserError(f"--control {path}:{number}: no non-empty string field 'text'")
            texts.append(text.strip())
    else:
        try:
            lines = path.read_text().splitlines()
        except UnicodeDecodeError:
            raise UserError(f"--control {path}: not a UTF-8 text file") from None
        texts = [line.strip() for line in lines if line.strip()]
    if len(texts) < MIN_CONTROL:
        raise UserError(f"--control {path} holds {len(texts)} texts; at least {MIN_CONTROL}")
    return texts


@dataclass
class RevControls:
    """A model's circuit heads and control statistics (the cached calibration)."""

    model: str
    key: str
    circuit: list[tuple[int, int]]  # (layer, head), 0-indexed, by decreasing mean shift
    ranking: list[tuple[int, int]]  # every head by decreasing mean shift (ablation curve)
    mlp_mu: list[float]  # [M] per layer with a feed-forward part
    mlp_sigma: list[float]  # [M]
    head_mu: list[float]  # [C] per circuit head
    head_sigma: list[float]  # [C]
    n_control: int
    n_arithmetic: int

    def mlp_threshold(self) -> np.ndarray:
        return np.asarray(self.mlp_mu) + np.asarray(self.mlp_sigma)

    def head_threshold(self) -> np.ndarray:
        return np.asarray(self.head_mu) + np.asarray(self.head_sigma)

    def record(self) -> dict:
        return {
            **asdict(self),
            "circuit": [list(c) for c in self.circuit],
            "ranking": [list(c) for c in self.ranking],
        }


def circuit_size(n_layers: int, heads: int) -> int:
    return max(1, min(MAX_CIRCUIT, int(CIRCUIT_SHARE * n_layers * heads)))


def _ids(lm: LM, text: str) -> list[int]:
    return list(lm.tokenizer(text)["input_ids"])


def control_key(lm: LM) -> str:
    """The calibration's cache key: the model's name and head fingerprint, the version, and
    the content of the control set in use and of the arithmetic prompts."""
    weight = lm.anatomy.unembed.weight[:8].detach().float().cpu().numpy()
    digest = hashlib.sha256()
    for part in (lm.name, str(VERSION), *control_texts(), *ARITHMETIC):
        digest.update(part.encode())
    digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def calibrate(lm: LM) -> RevControls:
    """Compute the calibration (no cache): A*H + (M + C) * n_control ablation rows (A layers
    with attention, M with a feed-forward part, C circuit heads; none of either part, none of
    its rows)."""
    heads, mlps = head_plan(lm), mlp_plan(lm)
    mean_shift = logit_shifts(lm, [_ids(lm, t) for t in ARITHMETIC], heads).mean(0)
    layers = len(lm.anatomy.attention_layers)
    size = circuit_size(layers, len(heads) // layers) if heads else 0
    ranking = [heads[i] for i in np.argsort(-mean_shift, kind="stable")]
    circuit = ranking[:size]
    plan: list[Ablation] = [*mlps, *circuit]
    texts = control_texts()
    shifts = logit_shifts(lm, [_ids(lm, t) for t in texts], plan)  # [n, M + C]
    mu, sigma = shifts.mean(0), shifts.std(0, ddof=1)
    n = len(mlps)
    return RevControls(
        model=lm.name,
        key=control_key(lm),
        circuit=[(a.layer, int(a.head)) for a in circuit],
        ranking=[(a.layer, int(a.head)) for a in ranking],
        mlp_mu=mu[:n].tolist(),
        mlp_sigma=sigma[:n].tolist(),
        head_mu=mu[n:].tolist(),
        head_sigma=sigma[n:].tolist(),
        n_control=len(texts),
        n_arithmetic=len(ARITHMETIC),
    )


_MEMORY: dict[str, RevControls] = {}


@torch.no_grad()
def controls(lm: LM) -> RevControls:
    """The calibration of ``lm``, from memory, the disk cache, or computed and cached."""
    key = control_key(lm)
    path = cache_dir() / "rev" / f"{key}.json"
    if key in _MEMORY:
        found = _MEMORY[key]
    elif path.is_file():
        data = json.loads(path.read_text())
        data["circuit"] = [tuple(c) for c in data["circuit"]]
        data["ranking"] = [tuple(c) for c in data["ranking"]]
        found = RevControls(**data)
    else:
        found = calibrate(lm)
    if not path.is_file():
        write_json(path, found.record())
    _MEMORY[key] = found
    return found
