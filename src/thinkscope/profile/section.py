"""What a profile section is and what it hands back.

A section is a name, a title, a cost estimate and a ``measure`` function from a
:class:`Context` to a :class:`SectionResult`. The result holds numbers (:class:`Stat`, each with
its CI and, where the protocol pairs samples across models, its per-question values), tables,
figures and notes; the runner caches it as ``sections/NAME/section.json`` and the page and
``profile diff`` render every section from that alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from thinkscope.models import LM
    from thinkscope.models.spec import ModelSpec
    from thinkscope.profile.protocol import Protocol


def _number(value: Any) -> float | None:
    """A JSON-safe float: ``None`` for NaN, infinities and missing values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class Stat:
    """One number of the card. ``value`` is ``None`` when the statistic is undefined, and then
    ``note`` says why (all samples correct, a constant metric, ...). ``lo``/``hi`` bound its 95%
    CI, ``method`` names how that was computed. ``per_question`` maps each question id to its
    per-question value where the number is a mean over questions: ``profile diff`` then pairs two
    profiles question by question."""

    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int | None = None
    unit: str = ""
    method: str = ""
    note: str = ""
    per_question: dict[str, float] | None = None

    def __post_init__(self) -> None:
        self.value, self.lo, self.hi = map(_number, (self.value, self.lo, self.hi))
        if self.value is None and not self.note:
            raise ValueError("an undefined Stat needs a note saying why")
        if self.per_question is not None:
            self.per_question = {str(k): float(v) for k, v in self.per_question.items()}

    @classmethod
    def undefined(cls, note: str, n: int | None = None, unit: str = "") -> Stat:
        return cls(None, n=n, unit=unit, note=note)


@dataclass
class FigureRef:
    """A figure the section saved under its folder (``file`` is relative to the profile)."""

    file: str
    caption: str


@dataclass
class SectionResult:
    """Everything a section measured. ``headline`` names the stats whose change ``profile diff``
    turns into the section's verdict. ``skipped`` (a whole section that cannot apply, e.g. REV on
    a model without attention) says why instead of measuring."""

    stats: dict[str, Stat] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    figures: list[FigureRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def __post_init__(self) -> None:
        unknown = [name for name in self.headline if name not in self.stats]
        if unknown:
            raise ValueError(f"headline stats not measured: {', '.join(unknown)}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SectionResult:
        return cls(
            stats={k: Stat(**v) for k, v in data["stats"].items()},
            headline=list(data["headline"]),
            tables=data["tables"],
            figures=[FigureRef(**f) for f in data["figures"]],
            notes=list(data["notes"]),
            skipped=data["skipped"],
        )


@dataclass
class Context:
    """What a section measures with: the protocol, the model, the profile folder and its own
    ``folder`` (``sections/NAME``) for the stages it runs, which resume there when it is
    rerun after a kill. ``lm()`` loads the model once for all sections; ``base`` is the run folder
    every section shares (generated and scored with the protocol's settings)."""

    protocol: Protocol
    spec: ModelSpec
    profile: Path
    folder: Path
    base: Path
    load: Callable[[], LM]

    def lm(self) -> LM:
        return self.load()

    def figure(self, fig: Figure, name: str, caption: str) -> FigureRef:
        """Save ``fig`` as ``sections/NAME/figures/<name>.png``, close it, and return its ref."""
        import matplotlib.pyplot as plt

        from thinkscope.core.atomic import atomic_write

        target = self.folder / "figures" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        plt.close(fig)
        return FigureRef(str(target.relative_to(self.profile)), caption)


@dataclass(frozen=True)
class Section:
    """A section of the card: ``estimate(protocol)`` is its expected wall time in seconds on the
    reference machine (for the ETA), ``measure(context)`` does the work."""

    name: str
    title: str
    measure: Callable[[Context], SectionResult]
    estimate: Callable[[Protocol], float]
