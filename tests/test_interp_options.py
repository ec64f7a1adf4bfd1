"""``interp run``'s options beside the presets: sizes, strengths, layers, the probe (logistic or
MLP), the saved steering texts, and the one-line errors before any model loads."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.core.errors import UserError
from thinkscope.experiments.interp import pipeline
from thinkscope.experiments.interp.presets import InterpConfig, InterpSizes
from thinkscope.interp.directions import Directions
from thinkscope.interp.probes import probe_layers
from tiny import tiny_lm

runner = CliRunner()


def test_a_preset_fills_the_sizes_and_an_explicit_value_overrides_it():
    quick, full = InterpSizes.parse(), InterpSizes.parse(preset="full")
    assert (quick.questions, quick.strengths, quick.folds) == (16, [-8.0, 0.0, 8.0], 4)
    assert (full.questions, full.samples, full.folds, len(full.strengths)) == (200, 8, 5, 9)
    mixed = InterpSizes.parse(preset="full", questions=7, strengths="-1,0.5", samples=None)
    assert (mixed.questions, mixed.samples, mixed.strengths) == (7, 8, [-1.0, 0.5])
    assert InterpSizes.parse(preset="layers:3-5").layers == "3-5"
    assert InterpSizes.parse(preset="layers:3-5", layers="1,2").layers == "1,2"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"strengths": "1,x"}, "--strengths: takes numbers"),
        ({"strengths": "1,1"}, "--strengths: names a strength twice"),
        ({"probe": "svm"}, "--probe"),
        ({"layers": "0-2"}, "--layers '0-2' must name layers from 1 up"),
        ({"layers": "a-b"}, "--layers takes all"),
        ({"contrast": 33}, "--contrast: the bundled contrast set has 32"),
        ({"folds": 1}, "--folds"),
        ({"preset": "huge"}, "unknown preset 'huge'"),
    ],
)
def test_bad_sizes_are_one_line_errors(values, message):
    with pytest.raises(UserError, match=message) as err:
        InterpSizes.parse(**values)
    assert "\n" not in str(err.value)


def _spy_run(monkeypatch) -> list:
    """The configs ``interp run`` hands to the pipeline (which then stops)."""
    seen = []

    def spy(config):
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(pipeline, "run_interp", spy)
    return seen


def test_the_command_passes_explicit_options_over_the_preset(tiny_model_dir, tmp_path, monkeypatch):
    seen = _spy_run(monkeypatch)
    args = ["interp", "run", "--model", str(tiny_model_dir), "--out", str(tmp_path / "o")]
    more = ["--preset", "full", "--questions", "3", "--strengths", "-1,0,1", "--probe", "mlp"]
    runner.invoke(app, [*args, *more, "--layers", "2-3", "--contrast", "5"])
    (config,) = seen
    assert (config.preset, config.questions, config.samples) == ("full", 3, 8)
    assert (config.strengths, config.probe, config.layers, config.contrast) == (
        [-1.0, 0.0, 1.0],
        "mlp",
        "2-3",
        5,
    )
    seen.clear()
    runner.invoke(app, args)
    assert (seen[0].preset, seen[0].questions, seen[0].probe) == ("quick", 16, "logistic")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "2-9"], "--layers '2-9' must lie within 1..4"),
        (["--steer-layer", "1", "--layers", "2-3"], "--steer-layer 1 is outside"),
        (["--strengths", "1,two"], "--strengths: takes numbers"),
        (["--probe", "forest"], "--probe"),
    ],
)
def test_bad_values_fail_before_any_model_loads(
    tiny_model_dir, tmp_path, monkeypatch, extra, message
):
    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(pipeline, "load_model", no_load)
    out = tmp_path / "o"
    args = ["interp", "run", "--model", str(tiny_model_dir), "--out", str(out), *extra]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, UserError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not out.exists()


def test_the_mlp_probe_separates_what_a_line_cannot():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(400, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(int)  # XOR of the signs: no linear boundary
    rows = np.concatenate([x, 0.1 * rng.normal(size=(400, 4))], axis=1)[:, None, :]
    line = probe_layers(rows, labels, [1], folds=4, n_resamples=100)
    mlp = probe_layers(rows, labels, [1], folds=4, n_resamples=100, probe="mlp", seed=3)
    assert line.accuracy[0] < 0.65 and mlp.accuracy[0] > 0.85
    again = probe_layers(rows, labels, [1], folds=4, n_resamples=100, probe="mlp", seed=3)
    assert again.equals(mlp)  # seeded: the same folds and the same initial weights


def test_the_pipeline_hands_the_probe_kind_to_the_probes(tmp_path, monkeypatch):
    lm = tiny_lm("llama", n_layers=2)
    texts = ["What is 3 + 5?", "Janet has 16 eggs", "The answer is 8.", "Question: A: B:"] * 2
    ids = [lm.tokenizer(t)["input_ids"] for t in texts]
    frame = pd.DataFrame({"prompt_ids": ids, "token_ids": ids[::-1], "correct": [True, False] * 4})
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return probe_layers(*args, **kwargs)

    monkeypatch.setattr(pipeline, "probe_layers", spy)
    config = InterpConfig(out=tmp_path, folds=2, batch_size=4, probe="mlp")
    table, _, _ = pipeline.correctness_probes(lm, frame, [1, 2], config)
    assert seen["probe"] == "mlp" and list(table["layer"]) == [1, 2]


def test_a_run_on_chosen_layers_saves_the_steered_texts(tiny_model_dir, tmp_path):
    config = InterpConfig(
        out=tmp_path / "out",
        model=str(tiny_model_dir),
        questions=2,
        samples=2,
        max_new_tokens=6,
        sweep_questions=3,
        strengths=[-60.0, 0.0, 60.0],
        contrast=4,
        layers="2-3",
        batch_size=4,
        folds=2,
    )
    summary = pipeline.run_interp(config)
    out = tmp_path / "out"
    assert summary["layers"] == [2, 3] and summary["steer_layer"] == 3
    dirs = Directions.load(out / "directions" / "reasoning.json")
    assert dirs.layers == [2, 3] and dirs.counts == (4, 4)  # --contrast prompts per class
    texts = {}
    for row in summary["sweep"][:3]:
        path = out / "texts" / f"steer_{row['alpha']:+g}.jsonl"
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(lines) == 3 and {r["strength"] for r in lines} == {row["alpha"]}
        assert {r["layer"] for r in lines} == {3} and all(r["prompt"] for r in lines)
        assert np.mean([r["correct"] for r in lines]) == row["accuracy"]
        texts[row["alpha"]] = [r["text"] for r in lines]
    assert texts[-60.0] != texts[0.0] != texts[60.0]  # steering changed what was generated
    ablated = (out / "texts" / "ablate.jsonl").read_text().splitlines()
    assert len(ablated) == 3
    page = (out / "interp.html").read_text()
    assert "Generated texts" in page and "strength +60" in page and "strength -60" in page
    assert summary["sizes"]["strengths"] == [-60.0, 0.0, 60.0]
