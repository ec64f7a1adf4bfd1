"""The REV grid: settings (preset < --config < options), numbered iterations, the control file,
and a 2-model x 2-temperature grid of tiny models that is killed and resumed."""

from __future__ import annotations

import json
import shlex

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from thinkscope.cli.app import app
from thinkscope.core.errors import UserError
from thinkscope.experiments.rev import grid as grid_module
from thinkscope.experiments.rev.grid import next_iteration, run_grid
from thinkscope.experiments.rev.spec import grid_config
from thinkscope.metrics.rev.control import control_key, read_control, using_control
from thinkscope.runstore.registry import list_runs

GYM = "gym:basic_arithmetic?min_terms=2&max_terms=2&min_digits=1&max_digits=1"


def test_settings_combine_preset_then_file_then_options(tmp_path):
    file = tmp_path / "rev.yaml"
    file.write_text("questions: 30\nmodels: [a, b]\nmax-new-tokens: 32\n")
    config = grid_config("full", file, {"questions": 5, "temperatures": "0.2,0.7"})
    assert (config.task, config.questions, config.max_new_tokens) == ("gsm8k", 5, 32)
    assert config.models == ["a", "b"] and config.temperatures == (0.2, 0.7)
    default = grid_config()
    assert (default.max_new_tokens, default.temperatures) == (64, (0.2,))  # the seed's


@pytest.mark.parametrize(
    ("preset", "text", "given", "message"),
    [
        ("best", None, {}, "--preset 'best' is unknown"),
        (None, "questions: [1", {}, "not YAML"),
        (None, "- a\n- b\n", {}, "expected a mapping"),
        (None, "temperature: 0.7\n", {}, "--temperatures"),
        (None, "bogus: 1\n", {}, "--bogus"),
        (None, None, {"models": "a,a"}, "must not repeat"),
        (None, None, {"temperatures": "0.2,x"}, "--temperatures"),
    ],
)
def test_bad_settings_fail_in_one_line(tmp_path, preset, text, given, message):
    file = None
    if text is not None:
        file = tmp_path / "rev.yaml"
        file.write_text(text)
    with pytest.raises(UserError, match=message) as err:
        grid_config(preset, file, given)
    assert "\n" not in str(err.value)


def test_iterations_are_numbered_never_reused_once_finished(tmp_path):
    config, other = grid_config(given={"models": "a"}), grid_config(given={"models": "b"})
    root = tmp_path / "experiments"
    assert next_iteration(root, config) == root / "iteration_001"
    first = root / "iteration_001"
    first.mkdir(parents=True)
    (first / "grid.yaml").write_text(yaml.safe_dump(config.record()))
    assert next_iteration(root, config) == first  # unfinished, same grid: it resumes
    assert next_iteration(root, other) == root / "iteration_002"  # another grid: a new one
    assert next_iteration(root, None) == root / "iteration_002"  # RUN folders: always new
    (first / "results").mkdir()
    (first / "results" / "results.json").write_text("{}")
    assert next_iteration(root, config) == root / "iteration_002"  # finished: never reused
    (root / "iteration_009").mkdir()
    assert next_iteration(root, other) == root / "iteration_010"
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file"):
        next_iteration(tmp_path / "file", config)


def test_control_files_are_read_and_validated(tmp_path):
    text = tmp_path / "control.txt"
    text.write_text("One sentence here.\n\n  Another one.  \n")
    assert read_control(text) == ["One sentence here.", "Another one."]
    rows = tmp_path / "control.jsonl"
    rows.write_text('{"text": "a b c"}\n{"text": "d e f"}\n')
    assert read_control(rows) == ["a b c", "d e f"]
    rows.write_text('{"text": "a b c"}\n{"body": "d"}\n')
    with pytest.raises(UserError, match=r"control.jsonl:2: no non-empty string field 'text'"):
        read_control(rows)
    text.write_text("only one\n")
    with pytest.raises(UserError, match="holds 1 texts; at least 2"):
        read_control(text)
    with pytest.raises(UserError, match="no such file"):
        read_control(tmp_path / "missing.txt")


def test_the_calibration_cache_keys_on_the_control_content():
    from tiny import tiny_lm

    lm = tiny_lm()
    bundled = control_key(lm)
    with using_control(["a b c d e", "f g h i j"]):
        custom = control_key(lm)
    with using_control(["a b c d e", "f g h i j"]):
        assert control_key(lm) == custom  # same content, same key
    with using_control(["a b c d e", "f g h i k"]):
        assert control_key(lm) != custom
    assert control_key(lm) == bundled != custom


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from tiny import tiny_model, tiny_tokenizer

    paths = []
    for layers in (4, 2):  # two sizes: the scaling criterion has two points
        path = tmp_path_factory.mktemp(f"tiny{layers}")
        tiny_model("llama", n_layers=layers).save_pretrained(path)
        tiny_tokenizer().save_pretrained(path)
        paths.append(path)
    return paths


def test_a_killed_grid_resumes_at_its_next_cell(two_models, tmp_path, monkeypatch):
    control = tmp_path / "control.txt"
    control.write_text("The cat sat on the warm mat.\nA river runs past the old mill.\n")
    args = [
        "experiment", "rev", "--models", ",".join(map(str, two_models)),
        "--temperatures", "0.5,1", "--task", GYM, "--questions", "2", "--n", "2",
        "--max-new-tokens", "4", "--resamples", "20", "--folds", "2",
        "--ablation-questions", "1", "--control", str(control), "--root", str(tmp_path / "it"),
    ]  # fmt: skip
    config = grid_config(
        given={
            "models": ",".join(map(str, two_models)),
            "temperatures": "0.5,1",
            "task": GYM,
            "questions": 2,
            "n": 2,
            "max_new_tokens": 4,
            "resamples": 20,
            "folds": 2,
            "ablation_questions": 1,
            "control": control,
        }
    )
    out = tmp_path / "it" / "iteration_001"
    real_generate, real_score = grid_module.generate_run, grid_module.score
    calls: list[tuple[str, str]] = []

    def generate(cell, path, **kw):
        calls.append(("generate", path.name))
        return real_generate(cell, path, show_progress=False, **kw)

    def score(lm, path, **kw):
        calls.append(("score", path.name))
        if len(calls) == 4:  # killed while scoring the second cell
            raise KeyboardInterrupt
        return real_score(lm, path, show_progress=False, **kw)

    monkeypatch.setattr(grid_module, "generate_run", generate)
    monkeypatch.setattr(grid_module, "score", score)
    with pytest.raises(KeyboardInterrupt):
        run_grid(config, out)
    names = sorted(p.name for p in (out / "cells").iterdir())
    assert names == ["m0_tiny40_T0.5", "m0_tiny40_T1"]
    calls.clear()
    monkeypatch.setattr("thinkscope.core.invocation._command", args)  # as the entry point does
    result = CliRunner().invoke(app, args, terminal_width=200)  # the same grid, from the CLI
    assert result.exit_code == 0, result.output
    assert calls == [  # the finished cell is not redone; the killed one is only scored
        ("score", "m0_tiny40_T1"),
        ("generate", "m1_tiny20_T0.5"),
        ("score", "m1_tiny20_T0.5"),
        ("generate", "m1_tiny20_T1"),
        ("score", "m1_tiny20_T1"),
    ]
    runs = pd.read_csv(out / "results" / "runs.csv")
    assert runs["run"].tolist() == [
        "m0_tiny40_T0.5",
        "m0_tiny40_T1",
        "m1_tiny20_T0.5",
        "m1_tiny20_T1",
    ]
    assert runs["temperature"].tolist() == [0.5, 1.0, 0.5, 1.0]
    assert runs["params"].iloc[0] > runs["params"].iloc[2]
    criteria = pd.read_csv(out / "results" / "criteria.csv")
    assert (criteria["criterion"] == "delta-AUC threshold").sum() == 4
    assert (criteria["criterion"] == "temperature variance of REV AUROC").sum() == 2
    for figure in ("scaling", "temperature", "ablation"):
        assert (out / "results" / "figures" / f"{figure}.png").stat().st_size > 1000
    # the control file calibrated apl and cud: 2 texts, recorded in each cell's scores.json
    scores = json.loads((out / "cells" / "m1_tiny20_T1" / "scores.json").read_text())
    assert scores["columns"]["apl"]["calibration"]["n_control"] == 2
    notes = (out / "notes.md").read_text()
    assert f"```bash\nthinkscope {shlex.join(args)}\n```" in notes  # the command, quoted
    assert "### Success criteria" in notes and notes.rstrip().endswith("what next)")
    (registered,) = [r for r in list_runs() if r["kind"] == "experiment rev"]
    assert registered["path"] == str(out.resolve()) and registered["summary"]["cells"] == 4
    again = CliRunner().invoke(app, [*args[:-2], "--out", str(out)])
    assert again.exit_code != 0 and "finished REV grid" in str(again.exception)
