"""Probe folds grouped by problem: no question in both training and test folds."""

import numpy as np
import pandas as pd
import pytest

from thinkscope.core.errors import UserError
from thinkscope.experiments.interp.pipeline import InterpConfig
from thinkscope.interp.probes import cv_folds, probe_layers
from tiny import tiny_lm


def _problems(n_problems: int, samples: int, d: int, seed: int = 1):
    """Samples that sit near their problem's random point; the label is the problem's own
    (a question the model always gets right or always wrong) and carries no other signal."""
    groups = np.repeat(np.arange(n_problems), samples)
    labels = np.repeat(np.arange(n_problems) % 2, samples)  # balanced, not learnable
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_problems, d))
    rows = centres[groups] + 0.1 * rng.normal(size=(len(groups), d))
    return rows[:, None, :], labels, groups


def test_grouped_folds_keep_every_problem_in_one_fold():
    rows, labels, groups = _problems(12, 5, 4)
    for grouped, spans in ((True, False), (False, True)):
        by = groups if grouped else None
        splits = cv_folds(4, seed=0, grouped=grouped).split(rows[:, 0], labels, by)
        shared = [set(groups[train]) & set(groups[test]) for train, test in splits]
        assert any(shared) == spans  # ungrouped folds do split problems: the check can fail
    folds = [set(groups[test]) for _, test in cv_folds(4, 0, True).split(rows, labels, groups)]
    assert sorted(g for fold in folds for g in fold) == list(range(12))  # each in exactly one


def test_grouping_removes_the_leak_from_memorised_problems():
    """Ungrouped, a probe recognises the problem from its siblings in training and looks
    accurate; grouped, it sees only new problems and falls to chance."""
    rows, labels, groups = _problems(40, 5, 60)
    leaky = probe_layers(rows, labels, [1], folds=4, n_resamples=200)
    honest = probe_layers(rows, labels, [1], folds=4, n_resamples=200, groups=groups)
    assert leaky.accuracy[0] > 0.9
    assert honest.accuracy[0] < 0.7


def test_bad_groups_are_user_errors():
    rows, labels, groups = _problems(3, 4, 2)
    with pytest.raises(UserError, match="fewer than the 5 CV folds"):
        probe_layers(rows, labels, [1], folds=5, groups=groups)
    with pytest.raises(UserError, match="one group id per input"):
        probe_layers(rows, labels, [1], folds=2, groups=groups[:-1])


def test_the_interp_pipeline_groups_its_probes_by_problem(tmp_path, monkeypatch):
    from thinkscope.experiments.interp import pipeline

    lm = tiny_lm("llama", n_layers=2)
    texts = ["What is 3 + 5?", "Janet has 16 eggs", "The answer is 8.", "Question: A: B:"] * 2
    ids = [lm.tokenizer(t)["input_ids"] for t in texts]
    frame = pd.DataFrame(
        {
            "prompt_ids": ids,
            "token_ids": ids[::-1],
            "correct": [True, False] * 4,
            "problem_id": np.repeat(["p0", "p1", "p2", "p3"], 2),
        }
    )
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return probe_layers(*args, **kwargs)

    monkeypatch.setattr(pipeline, "probe_layers", spy)
    config = InterpConfig(out=tmp_path, folds=2, batch_size=4)
    table, _, note = pipeline.correctness_probes(lm, frame, [1], config)
    assert note is None and list(table["layer"]) == [1]
    assert list(seen["groups"]) == list(frame["problem_id"])
    _, _, note = pipeline.correctness_probes(lm, frame.assign(problem_id="p0"), [1], config)
    assert note == "1 problems: too few for grouped probe folds"


def test_the_probe_command_groups_by_the_runs_problem_ids(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer
    from typer.testing import CliRunner

    from thinkscope.cli.app import app
    from thinkscope.core.atomic import write_parquet

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["What is 3 + 5?", "Janet has 16 eggs", "The answer is 8.", "Question: A: B:"] * 2
    ids = [tokenizer(t)["input_ids"] for t in texts]
    frame = pd.DataFrame(
        {
            "prompt_ids": ids,
            "token_ids": ids[::-1],
            "correct": [True, False] * 4,
            "problem_id": np.repeat(["p0", "p1", "p2", "p3"], 2),
        }
    )
    args = ["interp", "probe", "--model", str(tiny_model_dir), "--layers", "1", "--folds", "2"]
    for name, problems in (("four", frame), ("one", frame.assign(problem_id="p0"))):
        (tmp_path / name).mkdir()
        write_parquet(tmp_path / name / "traces.parquet", problems)
        run = [*args, "--run", str(tmp_path / name), "--out", str(tmp_path / f"{name}-out")]
        result = CliRunner().invoke(app, run)
        if name == "four":
            assert result.exit_code == 0, result.output
            probes = pd.read_csv(tmp_path / "four-out" / "probes.csv")
            assert probes["layer"].tolist() == [1] and probes["n"].tolist() == [8]
        else:
            assert isinstance(result.exception, UserError)
            assert "1 problems are fewer than the 2 CV folds" in str(result.exception)
