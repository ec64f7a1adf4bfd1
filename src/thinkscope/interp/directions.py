"""Difference-in-means directions per layer, saved as safetensors + JSON, compared and decoded.

A direction at layer ``l`` is ``mean_a[l] - mean_b[l]`` of two sets' block outputs (reasoning
vs control prompts, correct vs wrong traces, or one input set through two models), kept raw
and unit-normalised. Files: ``NAME.safetensors`` (``raw`` ``[n_layers, d]`` float64) and
``NAME.json`` (model, layers, set names, counts, positions).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from thinkscope.core.atomic import atomic_write, write_json
from thinkscope.core.errors import UserError
from thinkscope.interp.activations import RunningStats
from thinkscope.models import LM


@dataclass
class Directions:
    """Raw difference-in-means vectors ``raw`` ``[n_layers, d]`` (float64) and their metadata."""

    model: str
    layers: list[int]
    raw: np.ndarray
    sets: tuple[str, str] = ("a", "b")
    counts: tuple[int, int] = (0, 0)
    meta: dict = field(default_factory=dict)

    @property
    def unit(self) -> np.ndarray:
        """``raw`` with every row scaled to norm 1 ``[n_layers, d]`` (a zero row stays zero)."""
        norms = np.linalg.norm(self.raw, axis=1, keepdims=True)
        return np.divide(self.raw, norms, out=np.zeros_like(self.raw), where=norms > 0)

    def at(self, layer: int, unit: bool = True) -> torch.Tensor:
        """The direction of ``layer`` as a float32 tensor ``[d]``."""
        if layer not in self.layers:
            raise UserError(f"no direction for layer {layer}; these have {self.layers}")
        rows = self.unit if unit else self.raw
        return torch.from_numpy(rows[self.layers.index(layer)]).float()

    def save(self, path: Path | str) -> Path:
        """Write ``path.safetensors`` and ``path.json`` (atomically); returns the JSON path."""
        base = Path(path).with_suffix("")
        base.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"raw": np.ascontiguousarray(self.raw), "unit": self.unit}
        atomic_write(base.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
        meta = {k: v for k, v in asdict(self).items() if k != "raw"}
        meta["norms"] = np.linalg.norm(self.raw, axis=1).tolist()
        write_json(base.with_suffix(".json"), meta)
        return base.with_suffix(".json")

    @classmethod
    def load(cls, path: Path | str) -> Directions:
        base = Path(path).with_suffix("")
        files = base.with_suffix(".json"), base.with_suffix(".safetensors")
        if not all(f.is_file() for f in files):
            raise UserError(f"no directions at {base} (need {files[0].name} and {files[1].name})")
        meta = json.loads(files[0].read_text())
        return cls(
            model=meta["model"],
            layers=[int(x) for x in meta["layers"]],
            raw=load_file(str(files[1]))["raw"],
            sets=tuple(meta["sets"]),
            counts=tuple(meta["counts"]),
            meta=meta.get("meta", {}),
        )


def diff_in_means(
    a: RunningStats, b: RunningStats, model: str, sets: tuple[str, str] = ("a", "b"), **meta
) -> Directions:
    """``mean(a) - mean(b)`` per layer from two :func:`collect` results over the same layers."""
    if a.layers != b.layers:
        raise UserError(
            f"the two sets were collected at different layers: {a.layers} vs {b.layers}"
        )
    if a.count == 0 or b.count == 0:
        raise UserError("both sets need at least one input for a difference in means")
    return Directions(model, list(a.layers), a.mean - b.mean, sets, (a.count, b.count), meta)


def cosine_matrix(x: Directions, y: Directions | None = None) -> np.ndarray:
    """Cosine similarity ``[len(x.layers), len(y.layers)]`` of every pair of layers' directions
    (``y`` defaults to ``x``: across layers; another model's directions of the same width)."""
    y = x if y is None else y
    if x.raw.shape[1] != y.raw.shape[1]:
        raise UserError(
            f"directions of width {x.raw.shape[1]} and {y.raw.shape[1]} cannot be compared "
            "directly; map them first (thinkscope.interp.transplant)"
        )
    return x.unit @ y.unit.T


@torch.no_grad()
def decode(lm: LM, vector: torch.Tensor, k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Logit-lens reading of a direction ``[d]``: the ``k`` tokens whose logits it raises most
    (``top``) and least (``bottom``) through the final norm and unembedding (``lm.head``)."""
    logits = lm.head(vector.to(lm.device, lm.dtype).unsqueeze(0))[0].float().cpu()
    out = {}
    for name, largest in (("top", True), ("bottom", False)):
        values, ids = logits.topk(k, largest=largest)
        out[name] = [
            (lm.tokenizer.decode([int(i)]), float(v)) for i, v in zip(ids, values, strict=True)
        ]
    return out
