"""Which problems, and how they are prompted: the task settings, declared once (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from thinkscope.core.spec import Spec

FIELD_KEYS = ("question", "answer", "id")


class TaskSpec(Spec):
    """A task, how many of its problems, the prompt style and template, worked examples, and
    the field names of a JSONL task."""

    task: str = Field(
        "gsm8k", description="gsm8k, gym:<name>[?k=v&...], jsonl:<path>, or a preset."
    )
    questions: int = Field(20, ge=1, description="How many problems.")
    prompt_style: str = Field("cot", description="cot, direct, r1 or fewshot.")
    template: str = Field("auto", description="auto, chat or plain.")
    fewshot: int = Field(
        0, ge=0, description="Worked examples before the question (fewshot style: 2 when 0)."
    )
    fields: dict[str, str] = Field(
        {},
        description="JSONL field mapping, e.g. question=problem (repeatable).",
        json_schema_extra={"flag": "--field"},
    )

    @field_validator("task")
    @classmethod
    def _absolute(cls, task: str) -> str:
        """A JSONL task (``jsonl:<path>`` or ``<path>.jsonl``) whose file exists, with its path
        absolute, so that a run's config names the same file from any directory."""
        path = Path(task.removeprefix("jsonl:")).expanduser()
        if not (task.startswith("jsonl:") or task.endswith(".jsonl")) or not path.is_file():
            return task
        return f"{'jsonl:' if task.startswith('jsonl:') else ''}{path.resolve()}"

    @field_validator("fields", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        """``["question=problem", ...]`` (the CLI's ``--field``) as a mapping."""
        if not isinstance(value, list | tuple):
            return value
        out = {}
        for pair in value:
            key, sep, name = str(pair).partition("=")
            if not sep or key not in FIELD_KEYS:
                raise ValueError(f"takes question=KEY, answer=KEY or id=KEY, got {pair!r}")
            out[key] = name
        return out

    @property
    def shots(self) -> int:
        """Worked examples before the question: ``fewshot``, or 2 for the fewshot style."""
        return self.fewshot or (2 if self.prompt_style == "fewshot" else 0)
