"""``profile.json``: the card as data, in a schema that stays stable so that cards of different
models and machines can be tabulated (``docs/profile.md`` documents every key).

Top level: ``schema`` (``thinkscope.profile/1``), ``protocol`` (version, budget, the base run's
settings and each section's sizes), ``model`` (the resolved model spec: name, weights identity,
dtype), ``machine`` (the environment that measured it), ``created``, ``sections`` (one entry per
section, in page order) and ``timing`` (wall seconds: ``base_s`` for generating and scoring the
base run, ``sections``, ``total_s`` their sum, ``this_session_s`` since the last start or
resume). ``timing``, ``created``, ``machine`` and the ``cost`` section are the only parts two
profiles of the same model and protocol on one machine do not share.

A section: ``title``, ``skipped`` (why it could not apply, else null), ``stats`` (name ->
``value``, ``lo``, ``hi``, ``n``, ``unit``, ``method``, ``note``, ``per_question``; ``value``
null with a ``note`` when undefined), ``headline`` (the stats ``profile diff`` decides on),
``tables`` (name -> records), ``figures`` (``file``, ``caption``) and ``notes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from thinkscope.core.atomic import write_json
from thinkscope.core.errors import UserError
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import Protocol
from thinkscope.profile.section import Section, SectionResult
from thinkscope.runstore.folder import Run, now
from thinkscope.runstore.header import register

SCHEMA = "thinkscope.profile/1"
CARD = "profile.json"
PAGE = "profile.html"


def card_data(
    spec: ModelSpec,
    protocol: Protocol,
    sections: Sequence[Section],
    results: dict[str, tuple[SectionResult, float]],
    created: str,
    machine: dict,
    base_s: float,
) -> dict:
    """The card as a JSON-ready dict."""
    return {
        "schema": SCHEMA,
        "protocol": protocol.model_dump(),
        "model": spec.model_dump(),
        "machine": machine,
        "created": created,
        "sections": {s.name: {"title": s.title, **results[s.name][0].to_json()} for s in sections},
        "timing": {
            "base_s": base_s,
            "sections": {s.name: results[s.name][1] for s in sections},
            "total_s": round(base_s + sum(results[s.name][1] for s in sections), 3),
        },
    }


def write_card(
    run: Run,
    spec: ModelSpec,
    protocol: Protocol,
    sections: Sequence[Section],
    results: dict[str, tuple[SectionResult, float]],
    created: str,
    base_s: float,
    wall_s: float,
) -> Path:
    """Write ``profile.json`` and ``profile.html``, mark the folder finished and register it."""
    from thinkscope.profile.page import write_page
    from thinkscope.runstore.environment import environment

    card = card_data(spec, protocol, sections, results, created, environment(), base_s)
    card["timing"]["this_session_s"] = round(wall_s, 3)
    path = run.path / CARD
    write_json(path, card)
    write_page(run.path, card)
    timing = {**run.timing, "finished_at": now()}
    write_json(run.timing_path, timing)
    headline = {
        f"{name}.{stat}": entry["stats"][stat]["value"]
        for name, entry in card["sections"].items()
        for stat in entry["headline"]
    }
    register(run.path, "profile", run.config, headline, created)
    return path


def load_card(folder: Path | str) -> dict:
    """The card of the profile folder ``folder``; refuses an unfinished or foreign one."""
    folder = Path(folder)
    path = folder / CARD if folder.is_dir() else folder
    if not path.is_file():
        raise UserError(f"{folder} holds no finished profile ({CARD} is missing)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON: {err}") from None
    if card.get("schema") != SCHEMA:
        raise UserError(f"{path} is not a thinkscope profile (schema {card.get('schema')!r})")
    return card
