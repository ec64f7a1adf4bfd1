"""The profile's fixed, versioned protocol: one budget name stands for every size and setting.

``Protocol.of("quick")`` is what ``thinkscope profile --budget quick`` measures with. The base
run's settings are declared here; each section declares its own sizes beside its code
(``SIZES = {"quick": ..., "standard": ..., "full": ...}``) and the protocol gathers them, so a
setting lives in one place. The whole protocol is written into ``profile.json``: two cards with
the same ``version`` and budget measured the same thing, question for question.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from thinkscope.core.errors import UserError
from thinkscope.core.spec import Spec, with_default
from thinkscope.decoding.config import DecodingKnobs
from thinkscope.generation.spec import SamplingSpec
from thinkscope.tasks.spec import TaskSpec

VERSION = 1
"""Bumped whenever a default below (or a section's ``SIZES``) changes what a budget measures."""

BUDGETS = ("quick", "standard", "full")


class BaseRun(TaskSpec, SamplingSpec):
    """The run every section shares: the task, how many questions and samples, and sampling."""

    task: str = with_default(TaskSpec, "task", "demo-arith")
    questions: int = with_default(TaskSpec, "questions", 32)
    prompt_style: str = with_default(TaskSpec, "prompt_style", "fewshot")
    fewshot: int = with_default(TaskSpec, "fewshot", 2)
    n: int = with_default(SamplingSpec, "n", 8)
    max_new_tokens: int = with_default(SamplingSpec, "max_new_tokens", 48)
    temperature: float = with_default(SamplingSpec, "temperature", 0.7)
    log_steps: bool = with_default(DecodingKnobs, "log_steps", True)  # for calibration


BASE_RUNS = {
    "quick": BaseRun(),
    "standard": BaseRun(task="gsm8k", questions=100, n=8, max_new_tokens=384),
    "full": BaseRun(task="gsm8k", questions=500, n=16, max_new_tokens=1024),
}


class Protocol(Spec):
    """Every size and setting of one profile. ``budget`` is ``custom`` when the sizes are not a
    budget's (tests, and callers of :func:`thinkscope.profile.run_profile`)."""

    version: int = VERSION
    budget: str = "quick"
    run: BaseRun = Field(default_factory=BaseRun)
    sections: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @classmethod
    def of(cls, budget: str) -> Protocol:
        """The protocol of a named budget."""
        from thinkscope.profile.sections import SIZES

        if budget not in BUDGETS:
            raise UserError(f"--budget: unknown budget {budget!r} (known: {', '.join(BUDGETS)})")
        return cls(
            budget=budget,
            run=BASE_RUNS[budget],
            sections={name: sizes[budget].model_dump() for name, sizes in SIZES.items()},
        )

    def sizes(self, section: str) -> Spec:
        """The sizes of ``section``, validated by its own ``Sizes`` spec."""
        from thinkscope.profile.sections import SIZES

        kind = type(SIZES[section]["quick"])
        return kind.parse(**self.sections.get(section, {}))
