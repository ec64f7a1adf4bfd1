"""Base versus tuned: McNemar, wins, and the whole loop on a tiny random llama."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, chi2

from thinkscope.analysis import build_report
from thinkscope.core.errors import UserError
from thinkscope.experiments.compare import (
    CompareConfig,
    compare_models,
    mcnemar_paired,
    per_question,
)
from thinkscope.experiments.compare.core import resolve_model
from thinkscope.runstore.folder import Run
from tiny import tiny_model, tiny_tokenizer


def _series(values):
    return pd.Series(np.array(values, dtype=bool), index=[f"q{i}" for i in range(len(values))])


def test_mcnemar_matches_binomial_and_chi_square_references():
    # 2 both, 1 base only, 6 tuned only, 3 neither: exact (7 discordant pairs)
    base = _series([1, 1, 1] + [0] * 9)
    tuned = _series([1, 1, 0] + [1] * 6 + [0] * 3)
    test = mcnemar_paired(base, tuned)
    assert (test.both, test.base_only, test.tuned_only, test.neither) == (2, 1, 6, 3)
    assert test.exact and test.pvalue == pytest.approx(binomtest(1, 7, 0.5).pvalue)
    # 30 discordant pairs (10 vs 20): chi-square with continuity correction
    base, tuned = _series([1] * 10 + [0] * 20 + [1] * 5), _series([0] * 10 + [1] * 20 + [1] * 5)
    test = mcnemar_paired(base, tuned)
    stat = (abs(10 - 20) - 1) ** 2 / 30
    assert not test.exact and test.statistic == pytest.approx(stat)
    assert test.pvalue == pytest.approx(chi2.sf(stat, 1))
    with pytest.raises(UserError, match="same questions"):
        mcnemar_paired(base, tuned.iloc[::-1])


def test_per_question_winners():
    def frame(correct):
        return pd.DataFrame(
            {"problem_id": np.repeat(["a", "b", "c"], 2), "correct": np.array(correct, bool)}
        )

    table = per_question(frame([1, 0, 1, 1, 0, 0]), frame([1, 1, 0, 1, 0, 0]))
    assert list(table["winner"]) == ["tuned", "base", "tie"]
    assert list(table["base"]) == [0.5, 1.0, 0.0] and list(table["tuned"]) == [1.0, 0.5, 0.0]
    with pytest.raises(UserError, match="different questions"):
        per_question(frame([1] * 6), frame([1] * 6).assign(problem_id=list("abcdef")))


def _config(base, tuned, **kw):
    values = dict(
        base=str(base),
        tuned=str(tuned),
        task="demo-arith",
        questions=3,
        n=2,
        max_new_tokens=6,
        temperature=1.0,
        metrics="dtr,token-conf",
    )
    return CompareConfig(**{**values, **kw})


def test_compare_a_model_with_itself_is_all_ties(tiny_model_dir, tmp_path):
    result = compare_models(_config(tiny_model_dir, tiny_model_dir), tmp_path / "cmp", False)
    base = pd.read_parquet(tmp_path / "cmp/runs/base/traces.parquet")
    tuned = pd.read_parquet(tmp_path / "cmp/runs/tuned/traces.parquet")
    for column in ("problem_id", "prompt", "sample_seed", "completion"):
        assert list(base[column]) == list(tuned[column])
    assert set(result.questions["winner"]) == {"tie"}
    assert result.mcnemar.base_only == result.mcnemar.tuned_only == 0
    row = result.summary.set_index("model").loc["base"]
    assert row["mean_sample_accuracy"] == pytest.approx(base["correct"].mean())
    assert row["dtr"] == pytest.approx(base["dtr"].mean()) and not math.isnan(row["dtr"])
    assert {"pass@2", "greedy_accuracy", "mean_tokens", "token-conf"} <= set(row.index)
    assert "pass@1" not in row.index  # it is the mean sample accuracy
    saved = json.loads((tmp_path / "cmp/compare.json").read_text())
    assert saved["wins"] == {"tuned": 0, "base": 0, "tie": 3}
    assert "McNemar" in (tmp_path / "cmp/report.html").read_text()
    assert (tmp_path / "cmp/figures/compare.png").stat().st_size > 1000
    # the comparison is also a section of the tuned run's own report, figure included
    page = build_report(tmp_path / "cmp/runs/tuned").path.read_text()
    section = page[page.index('id="section-compare"') :]
    assert "Base versus tuned" in section and "McNemar" in section
    assert "base only 0, tuned only 0" in section and "data:image/png;base64," in section
    again = compare_models(_config(tiny_model_dir, tiny_model_dir), tmp_path / "cmp", False)
    assert again.summary.equals(result.summary)  # a rerun reuses the finished runs
    with pytest.raises(UserError, match="config differs in n"):
        compare_models(_config(tiny_model_dir, tiny_model_dir, n=3), tmp_path / "cmp", False)


def test_compare_two_models_against_hand_counts(tiny_model_dir, tmp_path):
    """Two different tiny models (seeds 0 and 1): their completions differ; then correctness
    set by hand in the four finished runs, and a rerun (which reuses the runs) compared with
    per-question means, winners and McNemar counted here. Fails if base and tuned are swapped
    anywhere, if a question's mean mixes in another question's samples, or if McNemar reads the
    sampled runs instead of the greedy ones."""
    other = tmp_path / "seed1"
    tiny_model("llama", seed=1).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    config = _config(tiny_model_dir, other, questions=6, n=2)
    compare_models(config, tmp_path / "cmp", False)
    runs = tmp_path / "cmp" / "runs"
    frames = {name: Run.open(runs / name).traces() for name in ("base", "tuned")}
    assert list(frames["base"]["sample_seed"]) == list(frames["tuned"]["sample_seed"])
    assert list(frames["base"]["completion"]) != list(frames["tuned"]["completion"])
    sampled = {  # 6 questions x 2 samples
        "base": [1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1],
        "tuned": [1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1],
    }
    greedy = {"base": [1, 0, 0, 1, 0, 0], "tuned": [1, 1, 1, 0, 1, 0]}
    for name in ("base", "tuned"):
        for folder, correct in ((name, sampled[name]), (f"{name}-greedy", greedy[name])):
            run = Run.open(runs / folder)
            traces = run.traces()
            traces["correct"] = np.array(correct, bool)
            run.write_traces(traces)
    result = compare_models(config, tmp_path / "cmp", False)
    table = result.questions.set_index("problem_id")
    ids = list(frames["base"]["problem_id"][::2])
    means = {k: np.array(v, float).reshape(6, 2).mean(1) for k, v in sampled.items()}
    assert table.loc[ids, "base"].tolist() == means["base"].tolist()  # 1, .5, 0, .5, 0, 1
    assert table.loc[ids, "tuned"].tolist() == means["tuned"].tolist()  # .5, 1, 1, 0, 0, 1
    assert table.loc[ids, "winner"].tolist() == ["base", "tuned", "tuned", "base", "tie", "tie"]
    test = result.mcnemar  # greedy pairs: both 1, base only 1, tuned only 3, neither 1
    assert (test.both, test.base_only, test.tuned_only, test.neither) == (1, 1, 3, 1)
    assert test.exact and test.pvalue == pytest.approx(2 * (1 + 4) / 2**4)  # 2 P(X <= 1)
    summary = result.summary.set_index("model")["mean_sample_accuracy"]
    assert summary.tolist() == [6 / 12, 7 / 12]
    saved = json.loads((tmp_path / "cmp/compare.json").read_text())
    assert saved["wins"] == {"tuned": 2, "base": 2, "tie": 2}


def test_unmerged_train_folder_is_refused(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(UserError, match="thinkscope merge"):
        resolve_model(str(tmp_path))


def test_local_models_are_stored_absolute(tiny_model_dir, tmp_path, monkeypatch):
    """A model directory given relative to the working directory is stored absolute (in the
    config, compare.json and both runs' config.yaml), so the comparison reproduces from
    anywhere; the bundled name and hub ids are kept as given."""
    monkeypatch.chdir(tiny_model_dir.parent)
    relative = tiny_model_dir.name
    config = _config(relative, relative, questions=1, n=1, max_new_tokens=2)
    assert config.base == config.tuned == str(tiny_model_dir.resolve())
    assert CompareConfig.parse(base="smollm2-135m", tuned="org/model").base == "smollm2-135m"
    compare_models(config, tmp_path / "cmp", False)
    saved = json.loads((tmp_path / "cmp/compare.json").read_text())
    assert saved["config"]["tuned"] == saved["models"]["tuned"] == str(tiny_model_dir.resolve())
    assert Run.open(tmp_path / "cmp/runs/tuned-greedy").config["model"] == str(
        tiny_model_dir.resolve()
    )


def test_a_missing_tuned_model_is_refused_before_any_run(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="neither a model directory"):
        compare_models(_config(tiny_model_dir, tmp_path / "nope"), tmp_path / "cmp", False)
    assert not (tmp_path / "cmp").exists()
