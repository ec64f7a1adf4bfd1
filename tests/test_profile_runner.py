"""The profile runner: its protocol, its refusals, its cache of finished sections, and a
profile killed in the middle of a section that resumes to the same card."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from thinkscope.core.errors import UserError
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import BUDGETS, BaseRun, Protocol
from thinkscope.profile.runner import run_profile
from thinkscope.profile.section import Section, SectionResult, Stat
from thinkscope.profile.sections import SECTIONS, accuracy

RUN = BaseRun(questions=3, n=2, max_new_tokens=6, prompt_style="cot")
VOLATILE = ("created", "machine", "timing")  # what two profiles of one model do not share


def _protocol(**sections) -> Protocol:
    return Protocol(budget="custom", run=RUN, sections=sections)


def _stable(card: dict) -> dict:
    return {k: v for k, v in card.items() if k not in VOLATILE}


class Checkpointed:
    """A section that writes one file per step into its folder, resumes from them, and raises
    KeyboardInterrupt once, after ``kill_after`` steps, to play a killed profile."""

    def __init__(self, steps: int = 4, kill_after: int | None = None) -> None:
        self.steps, self.kill_after, self.computed = steps, kill_after, []

    def measure(self, ctx) -> SectionResult:
        from thinkscope.runstore.folder import Run

        traces = Run(ctx.base).traces()
        for step in range(self.steps):
            done = ctx.folder / f"step{step}.json"
            if done.is_file():
                continue
            if self.kill_after is not None and len(self.computed) == self.kill_after:
                self.kill_after = None
                raise KeyboardInterrupt
            value = float(traces["n_tokens"].iloc[step % len(traces)])
            done.write_text(json.dumps(value))
            self.computed.append(step)
        values = [json.loads((ctx.folder / f"step{s}.json").read_text()) for s in range(4)]
        return SectionResult(stats={"sum": Stat(sum(values))}, headline=["sum"])

    def section(self) -> Section:
        return Section("steps", "Steps", self.measure, estimate=lambda protocol: 1.0)


def test_every_budget_names_every_section_and_the_version():
    for budget in BUDGETS:
        protocol = Protocol.of(budget)
        assert protocol.budget == budget and protocol.version >= 1
        assert set(protocol.sections) == {s.name for s in SECTIONS}
        for section in SECTIONS:
            protocol.sizes(section.name)  # each section's sizes validate
    quick, standard = Protocol.of("quick"), Protocol.of("standard")
    assert quick.run.questions * quick.run.n < standard.run.questions * standard.run.n
    with pytest.raises(UserError, match="unknown budget 'huge'"):
        Protocol.of("huge")


def test_an_unknown_model_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "p"
    with pytest.raises(UserError, match="neither a model"):
        run_profile(ModelSpec(model=str(tmp_path / "nomodel")), out, _protocol())
    assert not out.exists()


def test_a_killed_profile_resumes_to_the_same_card(tiny_model_dir, tmp_path):
    spec = ModelSpec(model=str(tiny_model_dir))
    whole = Checkpointed()
    reference = run_profile(
        spec, tmp_path / "whole", _protocol(), sections=[accuracy.SECTION, whole.section()]
    )
    assert whole.computed == [0, 1, 2, 3]

    killed = Checkpointed(kill_after=2)
    sections = [accuracy.SECTION, killed.section()]
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run_profile(spec, out, _protocol(), sections=sections)
    assert not (out / "profile.json").exists()
    finished = out / "sections" / "accuracy" / "section.json"
    stamp = finished.stat().st_mtime_ns

    with pytest.raises(UserError, match="unfinished"):  # not without --resume
        run_profile(spec, out, _protocol(), sections=sections)
    with pytest.raises(UserError, match="config differs in protocol"):
        run_profile(spec, out, _protocol(cost={"lens_traces": 2}), resume=True, sections=sections)
    card = run_profile(spec, out, _protocol(), resume=True, sections=sections)

    assert killed.computed == [0, 1, 2, 3]  # each step once: the resume redid nothing
    assert finished.stat().st_mtime_ns == stamp  # the finished section was read back
    a, b = (json.loads(p.read_text()) for p in (reference, card))
    assert _stable(a) == _stable(b)
    assert a["sections"]["steps"]["stats"]["sum"]["value"] > 0
    assert (out / "profile.html").is_file()
    with pytest.raises(UserError, match="finished profile"):
        run_profile(spec, out, _protocol(), sections=sections)


KILLED_IN = "representations"  # writes its collected activations before it measures
SCRIPT = """
import sys
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import Protocol
from thinkscope.profile.runner import run_profile
protocol = Protocol.model_validate_json(sys.argv[3])
run_profile(ModelSpec(model=sys.argv[1]), sys.argv[2], protocol, resume=sys.argv[4] == "resume")
"""


def _profile(model, out, protocol: Protocol, resume: bool = False) -> subprocess.Popen:
    args = [str(model), str(out), protocol.model_dump_json(), "resume" if resume else "start"]
    env = {**os.environ, "THINKSCOPE_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], env=env)


@pytest.mark.slow
def test_a_profile_killed_by_sigkill_mid_section_resumes_to_the_same_card(tiny_model_dir, tmp_path):
    protocol = Protocol.of("quick").model_copy(
        update={"budget": "custom", "run": BaseRun(questions=4, n=2, max_new_tokens=8)}
    )
    assert _profile(tiny_model_dir, tmp_path / "whole", protocol).wait(timeout=1800) == 0

    out = tmp_path / "killed"
    proc = _profile(tiny_model_dir, out, protocol)
    section = out / "sections" / KILLED_IN
    while not (section.is_dir() and any(p.name != "section.json" for p in section.iterdir())):
        assert proc.poll() is None, "the profile ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (section / "section.json").exists() and not (out / "profile.json").exists()
    assert _profile(tiny_model_dir, out, protocol, resume=True).wait(timeout=1800) == 0

    a, b = (json.loads((p / "profile.json").read_text()) for p in (tmp_path / "whole", out))
    for card in (a, b):
        card["sections"].pop("cost")  # wall-clock rates
    assert _stable(a) == _stable(b)


def test_class_means_split_samples_by_correctness_and_pair_by_question():
    from thinkscope.profile.numbers import class_means

    ids, values = ["a", "a", "b", "b"], [1.0, 3.0, 5.0, 9.0]
    stats = class_means("x", ids, values, [True, False, True, True], "tokens")
    assert stats["x.correct"].value == 5.0  # (1 + 5 + 9) / 3, over samples
    assert stats["x.correct"].per_question == {"a": 1.0, "b": 7.0}
    assert (stats["x.wrong"].value, stats["x.wrong"].per_question) == (3.0, {"a": 3.0})
    none_wrong = class_means("x", ids, values, [True] * 4)["x.wrong"]
    assert none_wrong.value is None and none_wrong.note == "no wrong sample"
