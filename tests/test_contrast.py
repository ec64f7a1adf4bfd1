"""``experiment contrast``: two tasks through one model, DTR / accuracy / length with
question-bootstrap CIs and their difference."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from thinkscope.cli.app import main
from thinkscope.core.errors import UserError
from thinkscope.experiments import Experiment, ExperimentConfig
from thinkscope.experiments.contrast import contrast
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run
from thinkscope.stats import bootstrap_indices, cluster_bootstrap, percentile_ci


def test_cluster_bootstrap_resamples_questions_with_all_their_samples():
    """Against a plain loop over the same resamples; questions of unequal size, so a mean of
    question means (or resampling traces) would differ."""
    groups = ["a", "a", "a", "b", "c", "c", "d"]
    values = np.array([1.0, 0.0, 1.0, 0.0, 1.0, np.nan, 0.25])
    estimate, reps = cluster_bootstrap(groups, values, n_resamples=300, seed=7)
    assert estimate == pytest.approx(np.nanmean(values), abs=1e-15)
    order = ["a", "b", "c", "d"]
    expected = []
    for idx in bootstrap_indices(4, 300, seed=7):
        for row in idx:
            picked = [v for q in row for g, v in zip(groups, values, strict=True) if g == order[q]]
            expected.append(np.nanmean(picked))
    np.testing.assert_allclose(reps, expected, rtol=0, atol=1e-15)
    lo, hi = percentile_ci(reps)
    assert (lo, hi) == tuple(np.quantile(expected, [0.025, 0.975]))
    assert lo < estimate < hi


def _task(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"jsonl:{path}"


@pytest.fixture
def tasks(tmp_path):
    hard = [
        {"id": f"h{i}", "question": f"A train goes {i} km in 2 h, then {i + 3} km. Total?",
         "answer": str(2 * i + 3)}
        for i in range(3)
    ]  # fmt: skip
    easy = [
        {"id": f"e{i}", "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(3)
    ]
    return _task(tmp_path / "hard.jsonl", hard), _task(tmp_path / "easy.jsonl", easy)


def test_contrast_on_a_tiny_model(tiny_model_dir, tasks, tmp_path):
    from thinkscope.models import load_model

    config = ExperimentConfig(
        out=tmp_path / "out", model_spec=ModelSpec(model=str(tiny_model_dir)), tasks=tasks,
        questions=3, n=4, max_new_tokens=8, temperature=1.0, g=0.0015,
    )  # fmt: skip
    table = contrast(Experiment("contrast", config, lm=load_model(str(tiny_model_dir))))
    assert set(table["metric"]) == {"dtr", "accuracy", "tokens"}
    runs = sorted((tmp_path / "out" / "runs").iterdir())
    assert [r.name for r in runs] == ["task0-hard.jsonl", "task1-easy.jsonl"]
    by = table.set_index(["metric", "task"])
    means = {}
    for run, task in zip(runs, tasks, strict=True):
        traces = Run.open(run).traces()
        assert Run.open(run).config["task"] == task and len(traces) == 12
        means[task] = {"accuracy": traces["correct"].mean(), "tokens": traces["n_tokens"].mean()}
        for metric, value in means[task].items():
            assert by.loc[(metric, task), "estimate"] == pytest.approx(value, abs=1e-12)
        assert by.loc[("dtr", task), "questions"] == 3 and by.loc[("dtr", task), "traces"] == 12
    diff = f"{tasks[0]} - {tasks[1]}"
    for metric in ("accuracy", "tokens", "dtr"):
        expected = by.loc[(metric, tasks[0]), "estimate"] - by.loc[(metric, tasks[1]), "estimate"]
        assert by.loc[(metric, diff), "estimate"] == pytest.approx(expected, abs=1e-12)
    assert (table["ci_low"] <= table["estimate"] + 1e-12).all()
    assert (table["estimate"] <= table["ci_high"] + 1e-12).all()
    dtr = by.loc[("dtr", tasks[0])]
    assert 0 < dtr.estimate < 1 and dtr.ci_low < dtr.ci_high  # g = 0.0015: DTR is not all 0
    assert (tmp_path / "out" / "figures" / "contrast.png").is_file()
    assert len(pd.read_csv(tmp_path / "out" / "results.csv")) == 9
    header = json.loads((tmp_path / "out" / "run.json").read_text())  # registered
    assert header["kind"] == "experiment contrast" and header["config"]["tasks"] == list(tasks)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [("gsm8k", "--tasks takes two different tasks"), ("gsm8k,gsm8k", "two different tasks")],
)
def test_tasks_must_be_two_different_ones(tasks, message, tmp_path, capsys):
    sys.argv = ["thinkscope", "experiment", "contrast", "--out", str(tmp_path / "o")]
    sys.argv += ["--tasks", tasks]
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.count("\n") == 0 and message in err
    assert not (tmp_path / "o").exists()


def test_an_unknown_task_is_refused_before_any_model_loads(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("thinkscope.experiments.common.load_model", refuse)
    config = ExperimentConfig(out=tmp_path / "o", tasks=("gsm8k", "no-such-task"))
    with pytest.raises(UserError, match="unknown task 'no-such-task'"):
        contrast(Experiment("contrast", config))
