"""The profile's selection section: its statistics against hand computations on synthetic
outcome tables, its honest degradation, and the whole section on a tiny random model."""

from __future__ import annotations

import pandas as pd
import pytest

from select_fixture import arithmetic_task
from thinkscope.core.errors import UserError
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import BaseRun, Protocol
from thinkscope.profile.section import Context
from thinkscope.profile.sections import selection
from thinkscope.select import experiment
from tiny import tiny_lm

# Question -> (Cons@n's correct, Think@n's correct) over two repeats. Cons@n's accuracy varies
# across questions, the paired difference is 0.5 on every question: a paired CI has no width.
CORRECT = {
    "q0": ((0, 0), (1, 0)),
    "q1": ((1, 0), (1, 1)),
    "q2": ((0, 0), (0, 1)),
    "q3": ((0, 1), (1, 1)),
}
TOKENS = {"cons@n": 40.0, "think@n": 25.0}


def outcome_table(correct=CORRECT, samples=(True, False, False, True)) -> pd.DataFrame:
    """Outcome rows as the selection experiment writes them, Think@n's in reverse order (a
    difference taken by position instead of by question would be wrong)."""
    rows = []
    for method, col in (("cons@n", 0), ("think@n", 1)):
        for q, (i, pair) in enumerate(correct.items()):
            for repeat in (0, 1):
                rows.append(
                    dict(
                        repeat=repeat,
                        question_id=i,
                        method=method,
                        correct=float(pair[col][repeat]),
                        tokens=TOKENS[method] + q + 10 * repeat,
                        lens_gflop=0.0 if method == "cons@n" else 1.5 + q,
                        sample_correct=list(samples),
                    )
                )
    table = pd.DataFrame(rows)
    return pd.concat([table[table.method == "cons@n"], table[table.method == "think@n"][::-1]])


def test_paired_difference_is_the_per_question_difference_with_a_paired_ci():
    diff = selection.paired_difference(outcome_table(), "think@n")
    assert diff.value == pytest.approx(0.5, abs=1e-12)
    assert diff.per_question == pytest.approx({q: 0.5 for q in CORRECT}, abs=1e-12)
    assert diff.n == 8  # questions x repeats
    # resampling whole questions of a constant difference: no width (an unpaired CI has some)
    assert diff.lo == pytest.approx(0.5, abs=1e-12) and diff.hi == pytest.approx(0.5, abs=1e-12)


def test_stats_equal_hand_computed_means():
    stats = selection.selection_stats(outcome_table())
    # Cons@n right in 2 of 8 (question, repeat) pairs; Think@n in 6 of 8
    assert stats["accuracy.cons@n"].value == pytest.approx(2 / 8, abs=1e-12)
    assert stats["accuracy.think@n"].value == pytest.approx(6 / 8, abs=1e-12)
    assert stats["accuracy.cons@n"].per_question == pytest.approx(
        {"q0": 0.0, "q1": 0.5, "q2": 0.0, "q3": 0.5}, abs=1e-12
    )
    # tokens: 25 + q + 10 r, averaged over q = 0..3 and r = 0, 1: 25 + 1.5 + 5
    assert stats["tokens.think@n"].value == pytest.approx(31.5, abs=1e-12)
    assert stats["tokens.think@n"].per_question["q3"] == pytest.approx(33.0, abs=1e-12)
    assert stats["lens_gflop.think@n"].value == pytest.approx(3.0, abs=1e-12)
    assert stats["lens_gflop.cons@n"].value == 0.0
    assert stats["relative_cost.think@n"].value == pytest.approx(31.5 / 46.5, abs=1e-12)
    assert stats[selection.DIFF].value == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("samples", [(False,) * 4, (True,) * 4])
def test_difference_is_undefined_without_a_partly_correct_question(samples):
    outcomes = outcome_table(samples=samples)
    assert selection.informative(outcomes) == 0
    stats = selection.selection_stats(outcomes)
    diff = stats[selection.DIFF]
    assert diff.value is None and "partly correct" in diff.note
    assert stats["accuracy.think@n"].value == pytest.approx(6 / 8)  # accuracies stay measured


@pytest.fixture(scope="module")
def lm():
    """A tiny llama for which 21 token ids end a sample, so lengths vary."""
    lm = tiny_lm("llama")
    lm.model.generation_config.eos_token_id = [lm.tokenizer.eos_token_id, *range(40, 60)]
    return lm


def context(lm, folder, sizes: dict, max_new_tokens: int = 8) -> Context:
    """A profile context of a small custom protocol on the three-question arithmetic task."""
    run = BaseRun(
        task=f"jsonl:{arithmetic_task(folder)}",
        questions=3,
        prompt_style="cot",
        max_new_tokens=max_new_tokens,
        temperature=1.0,
    )
    protocol = Protocol(budget="custom", run=run, sections={"selection": sizes})
    section = folder / "sections" / "selection"
    section.mkdir(parents=True, exist_ok=True)
    spec = ModelSpec(model="tiny-llama").resolved(lm)
    return Context(protocol, spec, folder, section, folder / "run", lambda: lm)


SMALL = dict(questions=3, n=4, prefix_tokens=3, window=3)


def test_section_on_a_tiny_model_degrades_and_resumes(lm, tmp_path, monkeypatch):
    ctx = context(lm, tmp_path, SMALL)
    calls = []
    real = experiment.run_methods
    monkeypatch.setattr(experiment, "run_methods", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = selection.measure(ctx)
    assert calls == [1]  # 3 questions x 4 samples: one unit
    methods = [r["method"] for r in result.tables["methods"]]
    assert methods == list(experiment.METHODS)
    question_ids = {"task-1", "task-2", "task-3"}
    for method in methods:
        assert result.stats[f"accuracy.{method}"].value == 0.0  # a random model is always wrong
        assert result.stats[f"tokens.{method}"].per_question.keys() == question_ids
    assert result.stats["lens_gflop.think@n"].value > 0
    assert result.stats["lens_gflop.cons@n"].value == 0
    assert result.stats["tokens.think@n"].value < result.stats["tokens.cons@n"].value
    assert result.stats[selection.DIFF].value is None
    assert result.headline == ["accuracy.think@n", selection.DIFF]
    assert not result.figures and any("no figure" in note for note in result.notes)
    assert result.tables["methods"][0]["accuracy_std"] is None  # one repeat: no spread, not NaN

    again = selection.measure(ctx)  # a finished pool is read back, not sampled again
    assert calls == [1]
    assert again.to_json() == result.to_json()


def test_section_draws_the_figure_when_the_methods_can_differ(lm, tmp_path, monkeypatch):
    ctx = context(lm, tmp_path, SMALL)
    real = experiment.outcome_rows

    def half_right(*args):  # grade sample 0 of each pool right, so pools are partly correct
        rows = real(*args)
        for row in rows:
            row["sample_correct"] = [True] + [False] * (len(row["sample_correct"]) - 1)
        return rows

    monkeypatch.setattr(experiment, "outcome_rows", half_right)
    result = selection.measure(ctx)
    assert result.stats[selection.DIFF].value == 0.0  # everything is still wrong
    (figure,) = result.figures
    assert (tmp_path / figure.file).stat().st_size > 0


def test_a_prefix_longer_than_a_sample_is_a_one_line_error(lm, tmp_path):
    ctx = context(lm, tmp_path, {**SMALL, "prefix_tokens": 9})
    with pytest.raises(UserError, match="--prefix-tokens 9"):
        selection.measure(ctx)
    assert not (ctx.folder / selection.FOLDER).exists()


def test_quick_sizes_fit_the_quick_base_run():
    quick = Protocol.of("quick")
    config_sizes = quick.sizes("selection")
    assert config_sizes.prefix_tokens <= quick.run.max_new_tokens
    for budget in ("standard", "full"):
        protocol = Protocol.of(budget)
        assert protocol.sizes("selection").prefix_tokens <= protocol.run.max_new_tokens
