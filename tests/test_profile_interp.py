"""The profile's representations and control sections: their new numbers against plain
references, their honest skips on a model that gets everything wrong, and both end to end on a
tiny random model through a small protocol."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from thinkscope.core.atomic import write_json
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.interp.directions import Directions
from thinkscope.models import load_model
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import BaseRun, Protocol
from thinkscope.profile.runner import run_profile, section_path
from thinkscope.profile.section import Context
from thinkscope.profile.sections import control, representations
from thinkscope.runstore.folder import Run
from tiny import tiny_lm

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"
SIZES = {
    "representations": {"questions": 6, "folds": 2, "lens_tokens": 3},
    "control": {"questions": 2, "n": 2, "max_new_tokens": 4, "steer_strengths": [-8, 0, 8]},
}
PROTOCOL = Protocol(
    budget="custom",
    run=BaseRun(task=GYM, questions=6, n=4, max_new_tokens=6, temperature=1.0),
    sections=SIZES,
)


def context(profile, name, lm, spec=None, protocol=PROTOCOL) -> Context:
    folder = profile / "sections" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = spec or ModelSpec(model="tiny")
    return Context(protocol, spec, profile, folder, profile / "run", lambda: lm)


def finish(ctx: Context, section) -> object:
    """Measure ``section`` and write its ``section.json`` as the runner does."""
    result = section.measure(ctx)
    write_json(section_path(ctx.profile, section.name), {"result": result.to_json(), "wall_s": 0})
    return result


def test_lens_table_is_the_hand_decoded_direction():
    lm = tiny_lm("llama", n_layers=3)
    raw = np.random.default_rng(0).normal(size=(2, 64))
    direction = Directions("tiny", [1, 3], raw)
    table = representations.lens_table(lm, direction, top_k=4)
    norm, head = lm.model.model.norm, lm.model.lm_head.weight.double()
    for row, vector in zip(table, raw, strict=True):
        u = torch.from_numpy(vector / np.linalg.norm(vector))  # float64 reference
        normed = u * torch.rsqrt(u.pow(2).mean() + norm.variance_epsilon) * norm.weight.double()
        logits = head @ normed
        for column, largest in (("raises", True), ("lowers", False)):
            ids = logits.topk(4, largest=largest).indices
            assert row[column] == " ".join(repr(lm.tokenizer.decode([int(i)])) for i in ids)
        assert row["norm"] == pytest.approx(np.linalg.norm(vector), rel=1e-12)
    assert [row["layer"] for row in table] == [1, 3]


def test_a_separable_layer_gets_probe_auroc_one_and_the_class_mean_direction(tmp_path):
    lm = tiny_lm("llama", n_layers=2)
    rng = np.random.default_rng(1)
    labels = np.tile([True, False, True, False], 6)  # 6 questions x 4 samples, both classes
    frame = pd.DataFrame(
        {"problem_id": np.repeat([f"q{i}" for i in range(6)], 4), "correct": labels}
    )
    rows = np.zeros((24, 2, 64), np.float32)  # noise on 4 axes: few enough for 12 samples
    rows[:, :, :4] = rng.normal(size=(24, 2, 4))
    rows[:, 1, 0] += np.where(labels, 5.0, -5.0)  # layer 2 separates the classes on one axis
    ctx = context(tmp_path, "representations", lm)
    sizes = representations.Sizes(questions=6, folds=2)
    result = representations._probes(ctx, rows, frame, [1, 2], sizes)
    assert result.stats["probe.auroc"].value == 1.0
    assert result.stats["probe.layer"].value == 2
    assert result.tables["probes"][0]["auroc"] < 1.0  # noise
    saved = Directions.load(representations.direction_path(tmp_path))
    by_hand = rows[labels].astype(np.float64).mean(0) - rows[~labels].astype(np.float64).mean(0)
    np.testing.assert_allclose(saved.raw, by_hand, rtol=0, atol=1e-12)
    assert saved.sets == ("correct", "wrong") and saved.layers == [1, 2]


def test_paired_delta_is_the_mean_difference_of_question_means():
    base = pd.DataFrame({"problem_id": ["a", "a", "b", "b"], "correct": [1.0, 0, 0, 0]})
    cell = pd.DataFrame({"problem_id": ["a", "a", "b", "b"], "correct": [1.0, 1, 1, 0]})
    stat = control.paired_delta(cell, base, "correct", "note")
    assert stat.value == pytest.approx(((1 - 0.5) + (0.5 - 0)) / 2)
    assert stat.per_question == {"a": 0.5, "b": 0.5} and stat.note == "note"
    assert control.ablated_layers(30, 4) == [1, 11, 20, 30]
    assert control.ablated_layers(3, 6) == [1, 2, 3]


def test_all_wrong_model_leaves_probes_undefined_and_skips_control(tiny_model_dir, tmp_path):
    out = tmp_path / "profile"
    sections = [representations.SECTION, control.SECTION]
    run_profile(ModelSpec(model=str(tiny_model_dir)), out, PROTOCOL, sections=sections)
    card = json.loads((out / "profile.json").read_text())["sections"]
    rep = card["representations"]
    assert rep["stats"]["probe.auroc"]["value"] is None
    rep_note = rep["stats"]["probe.auroc"]["note"]
    assert rep_note.startswith("0 correct and 24 wrong traces: too few")
    assert rep["stats"]["cka.adjacent"]["value"] is not None  # CKA needs no labels
    assert [f["file"].rsplit("/", 1)[1] for f in rep["figures"]] == ["cka.png"]  # no probe plot
    assert not representations.direction_path(out).exists()
    assert "no correct-vs-wrong direction to steer along: 0 correct" in card["control"]["skipped"]
    assert rep["notes"] == ["no probe and no correct-vs-wrong direction: " + rep_note]


@pytest.fixture(scope="module")
def labelled(tiny_model_dir, tmp_path_factory):
    """A tiny model's base run whose samples are relabelled half correct (a random model gets
    nothing right), and the model."""
    profile = tmp_path_factory.mktemp("profile")
    spec = ModelSpec(model=str(tiny_model_dir))
    config = GenerateConfig(**spec.model_dump(), **PROTOCOL.run.model_dump(), backend="hf")
    run = generate_run(config, profile / "run", show_progress=False)
    traces = run.traces()
    run.write_traces(traces.assign(correct=traces["sample_idx"] % 2 == 0))
    return profile, spec, load_model(spec)


def test_both_sections_end_to_end_and_resume(labelled, monkeypatch):
    profile, spec, lm = labelled
    rep = finish(context(profile, "representations", lm, spec), representations.SECTION)
    assert rep.headline == ["probe.auroc"] and rep.stats["probe.auroc"].value is not None
    assert len(rep.tables["probes"]) == len(rep.tables["direction"]) == lm.n_layers
    cka = np.load(profile / "sections" / "representations" / "cka.npy")
    np.testing.assert_allclose(np.diag(cka), 1.0, atol=1e-9)
    assert rep.stats["cka.adjacent"].value == pytest.approx(np.mean(np.diag(cka, 1)))

    ctx = context(profile, "control", lm, spec)
    result = control.SECTION.measure(ctx)
    assert [row["strength"] for row in result.tables["steering"]] == [-8, 0, 8]
    assert [row["layer"] for row in result.tables["ablation"]] == [1, 2, 3, 4]
    cells = {p.stem: pd.read_parquet(p) for p in (ctx.folder / "cells").glob("*.parquet")}
    assert len(cells) == 3 + 4 and all(len(c) == 2 * 2 for c in cells.values())
    plain = cells["steer_+0"]
    assert not cells["steer_+8"]["completion"].equals(plain["completion"])  # steering acts
    dtr = result.stats["steer.dtr.plus"]
    by_question = [
        cells[name].groupby("problem_id")["dtr"].mean() for name in ("steer_+8", "steer_+0")
    ]
    assert dtr.value == pytest.approx((by_question[0] - by_question[1]).mean())
    assert dtr.per_question.keys() == {str(q) for q in plain["problem_id"]}
    held_out = set(plain["problem_id"]).isdisjoint(Run(profile / "run").traces()["problem_id"])
    assert held_out  # the control questions are not those the direction was fitted on

    import thinkscope.interp.activations as activations
    import thinkscope.interp.sweep as sweep

    monkeypatch.setattr(sweep, "answers", lambda *a: pytest.fail("a finished cell is rerun"))
    monkeypatch.setattr(activations, "collect", lambda *a, **k: pytest.fail("rows recollected"))
    again = control.SECTION.measure(ctx)
    assert again.to_json() == result.to_json()
    ctx = context(profile, "representations", lm, spec)
    assert representations.SECTION.measure(ctx).to_json() == rep.to_json()
