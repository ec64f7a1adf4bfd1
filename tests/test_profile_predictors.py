"""The profile's predictors section: AUROCs, the best baseline and DeLong against plain
references; REV on a subset of questions with a tiny llama; none (with the reason) on Mamba2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from scored_run import make_scored_run
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import Protocol
from thinkscope.profile.section import Context
from thinkscope.profile.sections import predictors
from thinkscope.stats import delong_test
from tiny import tiny_lm

LENS_FREE = ("length", "logprob", "neg-entropy", "self-certainty")  # the fake run's baselines


def _measure(tmp_path, base, lm, **sizes):
    profile = tmp_path / "profile"
    folder = profile / "sections" / "predictors"
    folder.mkdir(parents=True, exist_ok=True)
    protocol = Protocol(budget="custom", sections={"predictors": sizes})
    return predictors.measure(Context(protocol, ModelSpec(), profile, folder, base, lambda: lm))


def _plain_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_a_model_without_attention_gets_no_rev_and_the_rest_is_measured(tmp_path):
    base = make_scored_run(tmp_path / "run", problems=5, n=4)
    result = _measure(tmp_path, base, tiny_lm("mamba2", n_layers=2))
    traces = pd.read_parquet(base / "traces.parquet")
    y = list(traces["correct"])
    stats = result.stats
    assert stats["auroc.rev"].value is None
    why = stats["auroc.rev"].note
    assert why.startswith("REV is not measured: ") and "attention" in why
    assert result.notes[0] == why
    assert not (tmp_path / "profile" / "sections" / "predictors" / "rev-run").exists()
    assert stats["auroc.dtr"].value == pytest.approx(_plain_auroc(traces["dtr"], y), abs=1e-12)
    hand = {c: _plain_auroc(traces[c], y) for c in LENS_FREE}
    best = max(hand, key=hand.get)
    assert stats["auroc.best_baseline"].value == pytest.approx(hand[best], abs=1e-12)
    assert stats["auroc.best_baseline"].note.startswith(f"{best}: the highest AUROC of 4 ")
    delong = stats["delong.dtr_vs_best_baseline"]
    assert delong.value == pytest.approx(stats["auroc.dtr"].value - hand[best], abs=1e-12)
    assert delong.note.endswith(f"p = {delong_test(traces['dtr'], traces[best], y).p:.3g}")
    assert delong.lo < delong.value < delong.hi
    assert stats["partial_r.dtr"].value is not None and "p = " in stats["partial_r.dtr"].note
    assert "partial_r.length" not in stats  # length is a covariate of the partial r
    assert result.headline == ["auroc.dtr", "auroc.best_baseline"]
    scored = json.loads((base / "scores.json").read_text())["columns"]
    assert {r["metric"] for r in result.tables["metrics"]} == set(scored)
    assert [f.file.rsplit("/", 1)[-1] for f in result.figures] == ["auroc.png"]


def test_an_all_wrong_run_has_undefined_aurocs_with_the_reason(tmp_path):
    base = make_scored_run(tmp_path / "run", problems=3, n=4, outcome="wrong")
    result = _measure(tmp_path, base, tiny_lm("mamba2", n_layers=2))
    for name in ("auroc.dtr", "auroc.self-certainty", "auroc.best_baseline"):
        assert result.stats[name].value is None and "0 positive" in result.stats[name].note
    assert result.stats["delong.dtr_vs_best_baseline"].value is None
    assert "all 12 scored samples wrong" in result.stats["partial_r.dtr"].note
    assert result.figures == []
    assert "no AUROC figure: AUROC is undefined for every metric" in result.notes
    assert json.loads(json.dumps(result.to_json()))  # JSON-safe: no NaN left


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    """A run of the tiny llama (4 questions x 4), scored with every metric but REV, its labels
    set to a mixed pattern (a random model gets none right)."""
    from thinkscope.generation.pipeline import GenerateConfig, generate_run
    from thinkscope.models import load_model
    from thinkscope.scoring import score

    lm = load_model(str(tiny_model_dir))
    config = GenerateConfig(
        model=str(tiny_model_dir),
        task="demo-arith",
        questions=4,
        n=4,
        max_new_tokens=8,
        temperature=0.9,
        prompt_style="fewshot",
    )
    path = tmp_path_factory.mktemp("tiny") / "run"
    run = generate_run(config, path, lm=lm, show_progress=False)
    score(lm, path, metrics="all", show_progress=False)
    traces = run.traces()
    traces["correct"] = traces["sample_idx"] % 2 == 0
    run.write_traces(traces)
    return lm, path


def test_rev_is_scored_on_the_first_questions_and_reused(tiny_run, tmp_path):
    lm, base = tiny_run
    result = _measure(tmp_path, base, lm, rev_questions=2)
    rev_run = tmp_path / "profile" / "sections" / "predictors" / "rev-run"
    subset = pd.read_parquet(rev_run / "traces.parquet")
    first = sorted(pd.read_parquet(base / "traces.parquet")["problem_id"].unique())[:2]
    assert sorted(subset["problem_id"].unique()) == first and len(subset) == 8
    rev = result.stats["auroc.rev"]
    assert rev.n == 8
    assert rev.value == pytest.approx(_plain_auroc(subset["rev"], subset["correct"]), abs=1e-12)
    rows = {r["metric"]: r for r in result.tables["metrics"]}
    assert rows["rev"]["n"] == 8 and rows["dtr"]["n"] == 16
    assert "rev" not in pd.read_parquet(base / "traces.parquet")  # the base run is left alone
    assert any("first 2 questions (8 samples" in n for n in result.notes)
    stamp = (rev_run / "scores.json").stat().st_mtime_ns
    again = _measure(tmp_path, base, lm, rev_questions=2)  # a resumed profile: nothing rescored
    assert (rev_run / "scores.json").stat().st_mtime_ns == stamp
    assert again.stats["auroc.rev"] == rev
