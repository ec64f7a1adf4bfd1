"""Presets of ``thinkscope interp run`` (seed 002's quick_test / full_analysis / layer_specific)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from importlib import resources

from thinkscope.core.errors import UserError


@dataclass(frozen=True)
class Preset:
    """How much of the seed's pipeline to run."""

    name: str
    questions: int  # problems sampled for the correct-vs-wrong probes
    samples: int  # samples per problem
    max_new_tokens: int
    sweep_questions: int  # greedy problems per alpha in the intervention sweep
    alphas: tuple[float, ...]  # multiples of the raw reasoning-minus-control direction
    folds: int = 5
    first: int | None = None  # layers first..last (None: 1..L)
    last: int | None = None

    def layers(self, n_layers: int) -> list[int]:
        first, last = self.first or 1, self.last or n_layers
        if not 1 <= first <= last <= n_layers:
            raise UserError(f"preset {self.name!r} needs layers within 1..{n_layers}")
        return list(range(first, last + 1))


PRESETS = {
    "quick": Preset("quick", 16, 4, 24, 8, (-8.0, 0.0, 8.0), folds=4),
    "full": Preset("full", 200, 8, 256, 100, (-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)),
}


def parse_preset(text: str) -> Preset:
    """``quick``, ``full`` or ``layers:A-B`` (the full preset on layers A..B)."""
    if text in PRESETS:
        return PRESETS[text]
    match = re.fullmatch(r"layers:(\d+)-(\d+)", text)
    if match:
        return replace(PRESETS["full"], name=text, first=int(match[1]), last=int(match[2]))
    raise UserError(f"unknown preset {text!r}; choose quick, full or layers:A-B")


def contrast_prompts() -> tuple[list[str], list[str], str]:
    """The bundled reasoning and control prompts and where they come from."""
    data = json.loads((resources.files("thinkscope.interp") / "data" / "contrast.json").read_text())
    return data["reasoning"], data["control"], data["origin"]
