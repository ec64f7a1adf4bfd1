"""``thinkscope profile MODEL``: run the protocol section by section into one folder::

    DIR/config.yaml              the model (resolved: dtype, weights) and the whole protocol
    DIR/run/                     the base run every section reads (generated, then scored)
    DIR/sections/NAME/           each section's own stage folders and figures
    DIR/sections/NAME/section.json   the section's result, written last: a section whose file
                                 exists is done, and a resumed profile skips it
    DIR/profile.json             the card (:mod:`thinkscope.profile.card`)
    DIR/profile.html             the page (:mod:`thinkscope.profile.page`)

A killed profile resumes with ``--resume``: finished sections are read back, the interrupted
one restarts from its stages' own checkpoints, and the card comes out the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console

from thinkscope.core.atomic import write_json
from thinkscope.core.errors import UserError
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import Protocol
from thinkscope.profile.section import Context, Section, SectionResult
from thinkscope.runstore.folder import Run, now

SECTION_FILE = "section.json"
BASE_FILE = "base.json"  # the base run's wall time (generation and scoring), once it is done
PACE_AFTER_S = 60.0
BASE_METRICS = "all"  # every metric but REV (costly ablation passes: predictors scores a subset)


def section_path(profile: Path, name: str) -> Path:
    return profile / "sections" / name / SECTION_FILE


def read_section(profile: Path, name: str) -> tuple[SectionResult, float] | None:
    """A finished section's result and wall time, or ``None`` when it has not finished."""
    path = section_path(profile, name)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return SectionResult.from_json(data["result"]), data["wall_s"]


def profile_config(spec: ModelSpec, protocol: Protocol) -> dict:
    return {**spec.model_dump(), "protocol": protocol.model_dump()}


def check_start(out: Path, spec: ModelSpec, protocol: Protocol, resume: bool) -> Run:
    """Refuse, before anything loads or is written, a folder that holds something else, a
    ``--resume`` of another protocol or model, and a finished profile without ``--resume``."""
    if not resume and (out / "profile.json").is_file():
        raise UserError(f"{out} holds a finished profile; choose another --out")
    if resume and not (out / "config.yaml").is_file():
        raise UserError(f"{out} holds no profile to resume; drop --resume to start one")
    return Run.check_start(out, profile_config(spec, protocol), resume=resume)


class Clock:
    """The ETA of the remaining sections: their estimates, scaled by how this machine has kept
    to the estimates of the sections measured so far, once those add up to :data:`PACE_AFTER_S`
    (a few fast sections say little about the machine)."""

    def __init__(self, sections: Sequence[Section], protocol: Protocol) -> None:
        self.estimates = {s.name: max(s.estimate(protocol), 1.0) for s in sections}
        self.spent = self.expected = 0.0

    def done(self, name: str, seconds: float) -> None:
        self.spent += seconds
        self.expected += self.estimates[name]

    def remaining(self, names: Sequence[str]) -> float:
        pace = self.spent / self.expected if self.expected >= PACE_AFTER_S else 1.0
        return pace * sum(self.estimates[n] for n in names)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def generate_base(spec: ModelSpec, protocol: Protocol, base: Path, lm) -> None:
    """Generate and score the base run (both resume from their own checkpoints)."""
    from thinkscope.generation.pipeline import GenerateConfig, generate_run
    from thinkscope.scoring import score

    config = GenerateConfig(**spec.model_dump(), **protocol.run.model_dump())
    generate_run(config, base, resume=True, lm=lm)
    score(lm, base, metrics=BASE_METRICS)


def run_profile(
    spec: ModelSpec,
    out: Path | str,
    protocol: Protocol,
    resume: bool = False,
    sections: Sequence[Section] | None = None,
    console: Console | None = None,
) -> Path:
    """Measure every section of the card of ``spec`` into ``out`` and write the card and its
    page; returns the path of ``profile.json``."""
    from thinkscope.models import load_model
    from thinkscope.profile.card import write_card
    from thinkscope.profile.sections import SECTIONS

    sections = list(SECTIONS if sections is None else sections)
    console = console or Console(stderr=True)
    out = Path(out)
    spec = spec.resolved()
    check_start(out, spec, protocol, resume)
    run = Run.start(out, profile_config(spec, protocol), resume=resume)
    started, created = time.perf_counter(), now()
    loaded = []

    def load():
        if not loaded:
            loaded.append(load_model(spec))
        return loaded[0]

    def context(name: str) -> Context:
        folder = out / "sections" / name
        folder.mkdir(parents=True, exist_ok=True)
        return Context(protocol, spec, out, folder, out / "run", load)

    clock = Clock(sections, protocol)
    results: dict[str, tuple[SectionResult, float]] = {}
    todo = [s.name for s in sections]
    if not (out / BASE_FILE).is_file():
        console.print("[bold]profile[/] base run: generate and score")
        tick = time.perf_counter()
        generate_base(spec, protocol, out / "run", load())
        write_json(out / BASE_FILE, {"wall_s": round(time.perf_counter() - tick, 3)})
    base_s = json.loads((out / BASE_FILE).read_text(encoding="utf-8"))["wall_s"]
    for i, section in enumerate(sections, 1):
        todo.remove(section.name)
        cached = read_section(out, section.name)
        if cached is not None:
            results[section.name] = cached
            console.print(f"[bold]profile[/] [{i}/{len(sections)}] {section.title}: cached")
            continue
        eta = datetime.now() + timedelta(seconds=clock.remaining([section.name, *todo]))
        console.print(
            f"[bold]profile[/] [{i}/{len(sections)}] {section.title}: "
            f"about {_clock(clock.remaining([section.name]))}, profile done about {eta:%H:%M}"
        )
        tick = time.perf_counter()
        result = section.measure(context(section.name))
        wall = round(time.perf_counter() - tick, 3)
        clock.done(section.name, wall)
        write_json(section_path(out, section.name), {"result": result.to_json(), "wall_s": wall})
        results[section.name] = (result, wall)
        console.print(f"        done in {_clock(wall)}")
    wall = time.perf_counter() - started
    return write_card(run, spec, protocol, sections, results, created, base_s, wall)
