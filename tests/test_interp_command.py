"""``thinkscope interp`` commands and the run pipeline end to end on tiny models."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.cli.interp import parse_layers
from thinkscope.core.errors import UserError
from thinkscope.experiments.interp.pipeline import InterpConfig, correctness_probes, run_interp
from thinkscope.experiments.interp.presets import InterpSizes
from thinkscope.interp.directions import Directions
from tiny import tiny_lm

runner = CliRunner()


def test_presets_and_layer_specs():
    assert parse_layers(InterpSizes.parse(preset="layers:15-25").layers, 30) == list(range(15, 26))
    assert parse_layers(InterpSizes.parse(preset="quick").layers, 4) == [1, 2, 3, 4]
    assert parse_layers("2,4", 4) == [2, 4] and parse_layers("2-3", 4) == [2, 3]
    for bad in ("bogus", "layers:3"):
        with pytest.raises(UserError):
            InterpSizes.parse(preset=bad)
    with pytest.raises(UserError):
        parse_layers("15-25", 12)
    with pytest.raises(UserError):
        parse_layers("0-3", 4)


def test_run_pipeline_with_two_tiny_models(tiny_model_dir, tmp_path):
    config = InterpConfig(
        out=tmp_path / "out",
        questions=4,
        samples=2,
        max_new_tokens=6,
        sweep_questions=3,
        strengths=[-2.0, 0.0, 2.0],
        folds=2,
        model=str(tiny_model_dir),
        model_b=str(tiny_model_dir),
        batch_size=4,
    )
    summary = run_interp(config)
    out = tmp_path / "out"
    for name in (
        "interp.html",
        "summary.json",
        "sweep.csv",
        "traces.parquet",
        "figures/summary.png",
        "directions/reasoning.json",
        "cross_model.json",
    ):
        assert (out / name).is_file(), name
    dirs = Directions.load(out / "directions" / "reasoning.json")
    assert dirs.layers == [1, 2, 3, 4] and dirs.sets == ("reasoning", "control")
    sweep = summary["sweep"]
    assert [row["alpha"] for row in sweep[:3]] == [-2.0, 0.0, 2.0]
    assert sweep[-1]["intervention"] == "ablate"
    assert all(row["n"] == 3 and 0 <= row["dtr"] <= 1 for row in sweep)
    saved = pd.read_csv(out / "sweep.csv")  # the file holds the summary's sweep, row for row
    assert saved[["alpha", "dtr"]].equals(pd.DataFrame(sweep)[["alpha", "dtr"]])
    assert len(pd.read_parquet(out / "traces.parquet")) == 4 * 2  # questions x samples
    cross = json.loads((out / "cross_model.json").read_text())
    assert np.allclose(cross["cka_diagonal"], 1.0)  # a model against itself
    assert np.allclose(cross["transplant_cosine"], 1.0, atol=0.02)
    assert "<table>" in (out / "interp.html").read_text()
    with pytest.raises(UserError):
        run_interp(config)  # never overwrites a finished result


def test_correctness_probes_and_direction_from_the_rows(tmp_path):
    lm = tiny_lm("llama", n_layers=3)
    texts = ["What is 3 + 5?", "Janet has 16 eggs", "The answer is 8.", "Question: A: B:"] * 2
    ids = [lm.tokenizer(t)["input_ids"] for t in texts]
    frame = pd.DataFrame({"prompt_ids": ids, "token_ids": ids[::-1], "correct": [True, False] * 4})
    config = InterpConfig(out=tmp_path, folds=2, batch_size=3)
    table, direction, note = correctness_probes(lm, frame, [1, 3], config)
    assert note is None and list(table["layer"]) == [1, 3]
    rows = np.load(tmp_path / "rows.npy").astype(np.float64)
    labels = frame["correct"].to_numpy()
    want = rows[labels].mean(0) - rows[~labels].mean(0)
    assert np.allclose(direction.raw, want, atol=1e-6) and direction.counts == (4, 4)
    _, _, note = correctness_probes(lm, frame.iloc[:3], [1], config)
    assert "too few" in note


def test_cli_directions_steer_and_errors(tiny_model_dir, tmp_path):
    model = str(tiny_model_dir)
    result = runner.invoke(
        app,
        ["interp", "directions", "--model", model, "--layers", "2-3", "--out", str(tmp_path / "d")],
    )
    assert result.exit_code == 0, result.output
    assert Directions.load(tmp_path / "d.json").layers == [2, 3]
    result = runner.invoke(
        app,
        [
            "interp",
            "steer",
            "--model",
            model,
            "--directions",
            str(tmp_path / "d.json"),
            "--layer",
            "2",
            "--prompt",
            "3 + 5",
            "--max-new-tokens",
            "4",
        ],
    )
    assert result.exit_code == 0 and result.output.count("alpha") == 3, result.output
    result = runner.invoke(
        app,
        [
            "interp",
            "patch",
            "--model",
            model,
            "--source",
            "What is 3 + 5?",
            "--target",
            "Janet has 16 eggs",
            "--layers",
            "1,4",
        ],
    )
    assert result.exit_code == 0 and "TV to source" in result.output, result.output
    last = [line for line in result.output.splitlines() if line.startswith("layer   4")][0]
    assert "TV to source 0.000" in last  # the last block's state decides the next token
    result = runner.invoke(
        app, ["interp", "cka", "--model", model, "--model-b", model, "--out", str(tmp_path / "cka")]
    )
    assert result.exit_code == 0 and "1.000 1.000" in result.output, result.output
    table = pd.read_csv(tmp_path / "cka" / "cka.csv", index_col="layer_a")
    n_layers = len(table)
    assert list(table.index) == list(range(1, n_layers + 1))  # row labels: model A's layers
    assert list(table.columns) == [str(i) for i in range(1, n_layers + 1)]  # columns: B's
    assert np.allclose(np.diag(table.to_numpy()), 1.0)
    result = runner.invoke(
        app,
        ["interp", "directions", "--model", model, "--layers", "9", "--out", str(tmp_path / "e")],
    )
    assert result.exit_code != 0 and isinstance(result.exception, UserError)
