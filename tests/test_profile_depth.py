"""The profile's depth section on synthetic scored runs, against plain loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scored_run import make_scored_run
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import Protocol
from thinkscope.profile.section import Context
from thinkscope.profile.sections import depth

L = 8
DEEP = math.ceil(0.85 * L)  # layer 7


def _no_model():
    raise AssertionError("the depth section reads the base run only")


def _base(tmp_path, outcome="mixed"):
    """A synthetic scored run with a top-k agreement column (mean depth plus noise)."""
    path = make_scored_run(tmp_path / "run", problems=5, n=4, n_layers=L, outcome=outcome)
    traces = pd.read_parquet(path / "traces.parquet")
    rng = np.random.default_rng(1)
    traces["topk-agreement"] = traces["mean-settling-depth"] + rng.normal(0, 1, len(traces))
    traces.to_parquet(path / "traces.parquet", index=False)
    record = json.loads((path / "scores.json").read_text())
    entry = {"metric": "topk-agreement", "params": {"k": 10, "alpha": 0.9}}
    record["columns"]["topk-agreement"] = entry
    (path / "scores.json").write_text(json.dumps(record))
    return path


def _measure(tmp_path, base, **sizes):
    profile = tmp_path / "profile"
    folder = profile / "sections" / "depth"
    folder.mkdir(parents=True)
    protocol = Protocol(budget="custom", sections={"depth": sizes})
    return depth.measure(Context(protocol, ModelSpec(), profile, folder, base, _no_model))


def _plain(base):
    """Per trace: correct, and the JSD profile as a list of rows of floats."""
    traces = pd.read_parquet(base / "traces.parquet")
    tokens = pd.read_parquet(base / "token_metrics.parquet")
    assert list(tokens["problem_id"]) == list(traces["problem_id"])
    profiles = [[list(map(float, row)) for row in p] for p in tokens["jsd_profile"]]
    depths = [list(map(int, d)) for d in tokens["settling_depth"]]
    return list(traces["correct"]), profiles, depths


def _plain_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_settling_histogram_shares_match_a_hand_count(tmp_path):
    base = _base(tmp_path)
    result = _measure(tmp_path, base)
    correct, _, depths = _plain(base)
    assert any(correct) and not all(correct)
    rows = result.tables["settling_depth"]
    assert [r["layer"] for r in rows] == list(range(1, L + 1))
    for name, keep in (("all", lambda c: True), ("correct", bool), ("wrong", lambda c: not c)):
        flat = [d for c, ds in zip(correct, depths, strict=True) if keep(c) for d in ds]
        for row in rows:
            hand = sum(d == row["layer"] for d in flat)
            assert row[f"tokens_{name}"] == hand
            assert row[f"share_{name}"] == pytest.approx(hand / len(flat), abs=1e-15)
        assert sum(r[f"share_{name}"] for r in rows) == pytest.approx(1, abs=1e-12)
    spread = [r["share_all"] for r in rows]
    assert max(spread) < 0.9  # the tokens spread over layers: not a one-bin histogram


def test_g_curve_equals_dtr_and_auroc_recomputed_by_hand(tmp_path):
    base = _base(tmp_path)
    result = _measure(tmp_path, base, g_grid=[0.1, 0.5])
    correct, profiles, _ = _plain(base)
    means = []
    for row, g in zip(result.tables["g_curve"], (0.1, 0.5), strict=True):
        ratios = []
        for profile in profiles:
            settle = [next((i + 1 for i, v in enumerate(r) if v <= g), L) for r in profile]
            ratios.append(sum(d >= DEEP for d in settle) / len(settle))
        assert row["g"] == g
        # DTR is a float32 mean per trace (deep_thinking_ratio): within 1e-7 of the exact one
        assert row["mean_dtr"] == pytest.approx(sum(ratios) / len(ratios), abs=1e-7)
        assert row["auroc"] == pytest.approx(_plain_auroc(ratios, correct), abs=1e-12)
        assert row["auroc_lo"] <= row["auroc"] <= row["auroc_hi"]
        means.append(row["mean_dtr"])
    assert means[0] > means[1] + 0.05  # a lower g settles later: the grid matters
    traces = pd.read_parquet(base / "traces.parquet")
    assert result.stats["dtr"].value == pytest.approx(traces["dtr"].mean(), abs=1e-12)
    assert set(result.stats["dtr"].per_question) == set(traces["problem_id"])


def test_jsd_by_layer_is_the_mean_of_each_samples_mean(tmp_path):
    base = _base(tmp_path)
    rows = _measure(tmp_path, base).tables["jsd_by_layer"]
    correct, profiles, _ = _plain(base)
    for name, keep in (("correct", True), ("wrong", False)):
        mine = [p for c, p in zip(correct, profiles, strict=True) if c == keep]
        for layer, row in enumerate(rows):
            per_trace = [sum(r[layer] for r in p) / len(p) for p in mine]
            assert row[f"jsd_{name}"] == pytest.approx(sum(per_trace) / len(mine), abs=1e-6)
    assert rows[0]["jsd_all"] > 0.3 and rows[-1]["jsd_all"] == 0  # falls to 0 at layer L


def test_topk_agreement_stats_and_figures(tmp_path):
    base = _base(tmp_path)
    result = _measure(tmp_path, base)
    traces = pd.read_parquet(base / "traces.parquet")
    agreement, correct = traces["topk-agreement"], traces["correct"]
    assert result.stats["topk_agreement"].value == pytest.approx(agreement.mean(), abs=1e-12)
    auroc = result.stats["auroc.topk_agreement"]
    assert auroc.value == pytest.approx(_plain_auroc(list(agreement), list(correct)), abs=1e-12)
    assert result.headline == ["dtr", "settling_depth.mean"]
    names = sorted((tmp_path / "profile" / f.file).name for f in result.figures)
    assert names == ["dtr.png", "g_curve.png", "jsd_by_layer.png", "settling.png"]


def test_an_all_wrong_run_says_what_is_undefined(tmp_path):
    base = _base(tmp_path, outcome="wrong")
    result = _measure(tmp_path, base)
    stats = result.stats
    assert stats["dtr"].value is not None
    assert stats["dtr.correct"].value is None and stats["dtr.correct"].note == "no correct sample"
    assert stats["auroc.topk_agreement"].value is None
    assert "0 positive" in stats["auroc.topk_agreement"].note
    assert all(
        r["auroc"] is None and "0 positive" in r["auroc_note"] for r in result.tables["g_curve"]
    )
    assert all(r["share_correct"] is None for r in result.tables["settling_depth"])
    assert all(r["jsd_correct"] is None for r in result.tables["jsd_by_layer"])
    assert any("no correct sample" in n for n in result.notes)
    assert any("AUROC of DTR is undefined at every g" in n for n in result.notes)
    assert json.loads(json.dumps(result.to_json()))  # JSON-safe: no NaN left
