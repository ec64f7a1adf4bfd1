"""Calibration, per-step analyses and decode sweeps, each against a plain reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from thinkscope.core.atomic import write_json
from thinkscope.core.errors import UserError
from thinkscope.experiments.decoding import step_stats
from thinkscope.experiments.decoding.calibrate import (
    CalibrationConfig,
    grid_of,
    power_law_points,
    run_calibration,
    teacher_force,
)
from thinkscope.experiments.decoding.sweep import load_sweep, summarize_run
from thinkscope.models.spec import ModelSpec
from thinkscope.runstore.folder import Run
from thinkscope.stats import fit_power_law
from tiny import tiny_lm


@pytest.fixture(scope="module")
def peaked_lm():
    """A tiny llama whose unembedding is scaled up, so its distributions are far from flat."""
    lm = tiny_lm("llama", seed=3)
    with torch.no_grad():
        lm.model.get_output_embeddings().weight.mul_(25.0)
    return lm


# -- teacher forcing -------------------------------------------------------------------


def test_teacher_force_matches_a_per_sequence_forward_pass_with_padding(peaked_lm):
    tok = peaked_lm.tokenizer
    rows = [
        ("a", tok("What is 3 + 5?")["input_ids"], tok(" 3 + 5 = 8. The answer is 8.")["input_ids"]),
        ("b", tok("Janet has 16 eggs and eats 3. She sells")["input_ids"], tok(" 13")["input_ids"]),
        ("c", tok("Q")["input_ids"], tok(" 12 - 7 = 5. The answer is 5.")["input_ids"]),
    ]
    got = teacher_force(peaked_lm, rows, top_k=20)
    for (pid, prompt, ref), out in zip(rows, got, strict=True):
        with torch.no_grad():
            logits = peaked_lm.model(torch.tensor([prompt + ref])).logits[0].double()
        probs = torch.softmax(logits[len(prompt) - 1 : len(prompt) + len(ref) - 1], dim=-1)
        order = torch.argsort(probs, dim=-1, descending=True, stable=True)
        ranks = [int((order[t] == ref[t]).nonzero()) + 1 for t in range(len(ref))]
        assert out["problem_id"] == pid and out["ref_ids"] == ref
        assert out["ref_rank"] == ranks
        np.testing.assert_allclose(out["top_probs"], probs.gather(1, order[:, :20]), atol=1e-5)
        assert out["top_ids"] == order[:, :20].tolist()
        np.testing.assert_allclose(
            out["ref_prob"], [probs[t, ref[t]] for t in range(len(ref))], atol=1e-5
        )
    assert {r for o in got for r in o["ref_rank"]} != {1}, "the fixture must not be trivial"


def test_grid_counts_match_a_plain_loop(peaked_lm):
    tok = peaked_lm.tokenizer
    texts = ["What is 3 + 5? 3 + 5 = 8.", "Calculate 12 - 7. 12 - 7 = 5.", "Janet has 16 eggs"]
    rows = [(str(i), tok(t)["input_ids"][:3], tok(t)["input_ids"][3:]) for i, t in enumerate(texts)]
    positions = pd.DataFrame(teacher_force(peaked_lm, rows, top_k=20))
    grid = grid_of(positions)
    counts, hits = np.zeros(10, int), np.zeros((10, 20), int)
    for _, row in positions.iterrows():
        for probs, rank in zip(row["top_probs"], row["ref_rank"], strict=True):
            b = min(9, 9 - int(np.floor(10 * probs[0])))
            b = max(b, 0)
            counts[b] += 1
            if rank <= 20:
                hits[b, rank - 1] += 1
    assert grid["count"] == counts.tolist()
    assert grid["hits"] == hits.tolist()
    assert counts.sum() == sum(len(r) for r in positions["ref_ids"])
    assert grid["bins"][0] == "0.9-1.0" and grid["bins"][9] == "0.0-0.1"


def test_power_law_fit_recovers_a_known_law():
    rng = np.random.default_rng(0)
    p = 10 ** rng.uniform(-4, 0, size=(40_000, 20))
    truth_a, truth_b = -0.2, 0.8
    correct = rng.random(p.shape) < np.minimum(1, 10**truth_a * p**truth_b)
    points = power_law_points(p, correct, min_pairs=50)
    a, b = fit_power_law(points["p"], points["c"])
    assert a == pytest.approx(truth_a, abs=0.05)
    assert b == pytest.approx(truth_b, abs=0.03)


def test_power_law_points_bin_by_quarter_decades():
    p = np.array([[0.9, 0.5, 0.05], [0.8, 0.04, 0.0]])
    correct = np.array([[True, False, False], [False, True, False]])
    points = power_law_points(p, correct, min_pairs=1)
    # bins: 0.05, 0.04 -> [-1.5, -1.25); 0.5 -> [-0.5, -0.25); 0.9, 0.8 -> [-0.25, 0); 0 out
    assert points["n"] == [2, 1, 2]
    assert points["c"] == [0.5, 0.0, 0.5]
    assert points["p"] == pytest.approx([0.045, 0.5, 0.85])


def test_calibration_folder_is_written_once_and_reread(tmp_path, peaked_lm):
    config = CalibrationConfig(
        model_spec=ModelSpec(model="tiny"),
        task="gsm8k:train",
        questions=3,
        batch_size=2,
        min_pairs=1,
    )
    summary = run_calibration(config, tmp_path / "cal", lm=peaked_lm, show_progress=False)
    stored = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert stored["A"] == summary["A"] and stored["B"] == summary["B"]
    assert len(stored["grid"]["prob"]) == 10 and len(stored["grid"]["prob"][0]) == 20
    assert sum(stored["grid"]["count"]) == stored["tokens"]
    assert summary["problems"] == 3
    assert sorted(p.name for p in (tmp_path / "cal" / "figures").iterdir()) == [
        "calibration_fit.png",
        "calibration_heatmap.png",
    ]
    assert not (tmp_path / "cal" / "shards").exists()
    again = run_calibration(config, tmp_path / "cal", lm=None, show_progress=False)
    assert again["A"] == summary["A"]  # no model needed: nothing is recomputed


def test_a_killed_calibration_resumes_from_its_shards(tmp_path, peaked_lm):
    config = CalibrationConfig(
        model_spec=ModelSpec(model="tiny"),
        task="gsm8k:train",
        questions=4,
        batch_size=2,
        min_pairs=1,
    )
    out = tmp_path / "killed"
    full = run_calibration(config, out, lm=peaked_lm, show_progress=False)
    (out / "calibration.json").unlink()  # as if killed after the first unit: keep one shard
    shard = pd.read_parquet(out / "positions.parquet").iloc[:2]
    Run(out).write_unit("00000", shard)
    with pytest.raises(UserError, match="--resume"):
        run_calibration(config, out, lm=peaked_lm, show_progress=False)
    resumed = run_calibration(config, out, resume=True, lm=peaked_lm, show_progress=False)
    assert resumed["grid"] == full["grid"] and resumed["A"] == full["A"]


def test_calibration_bad_input(tmp_path):
    with pytest.raises(UserError, match="no reference solutions"):
        run_calibration(CalibrationConfig(task="gym:basic_arithmetic", questions=2), tmp_path / "x")
    assert not (tmp_path / "x").exists()


# -- per-step analyses -------------------------------------------------------------------


def _random_steps(seed: int = 0, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = int(rng.integers(0, 25))
        rows.append(
            {
                "problem_id": f"q{i % 30}",
                "sample_idx": i // 30,
                "step_pmax": rng.choice([0.2, 0.5, 0.7, 0.99], size=length).tolist(),
                "step_rank": rng.choice([1, 1, 1, 2, 3], size=length).tolist(),
                "correct": bool(rng.random() < 0.4),
                "pred": str(rng.integers(0, 3)),
            }
        )
    return pd.DataFrame(rows)


def test_counts_and_accuracies_match_plain_loops():
    frame = _random_steps()
    low = step_stats.low_confidence_counts(frame, 0.5)
    assert low.tolist() == [sum(p < 0.5 for p in row) for row in frame["step_pmax"]]
    off = step_stats.off_top_counts(frame)
    table = step_stats.accuracy_by_count(off, frame["correct"].to_numpy(float))
    for k in range(11):
        members = [
            c
            for c, ranks in zip(frame["correct"], frame["step_rank"], strict=True)
            if (sum(r != 1 for r in ranks) == k if k < 10 else sum(r != 1 for r in ranks) >= 10)
        ]
        row = table.iloc[k]
        assert row["n"] == len(members)
        if members:
            assert row["accuracy"] == pytest.approx(sum(members) / len(members))
    assert table["n"].sum() == len(frame)


def test_mean_rank_bins_hold_their_edges():
    frame = pd.DataFrame(
        {
            "step_rank": [[1, 1], [1] * 19 + [2], [1, 2], [2, 2], [1] * 99 + [2], []],
            "correct": [True, False, True, True, False, True],
        }
    )
    ranks = step_stats.mean_ranks(frame)
    table = step_stats.accuracy_by_mean_rank(ranks, frame["correct"].to_numpy(float))
    n = dict(zip(table["mean_rank"], table["n"], strict=True))
    assert n == {
        "1": 1,
        "(1, 1.05)": 1,
        "[1.05, 1.1)": 1,
        "[1.1, 1.25)": 0,
        "[1.25, 1.5)": 0,
        "[1.5, 2)": 1,
        "2+": 1,
    }


def test_conditioned_vote_uses_the_confident_half():
    frame = pd.DataFrame(
        {
            "problem_id": ["a"] * 5,
            "pred": ["9", "9", "9", "8", "8"],
            "correct": [False, False, False, True, True],
        }
    )
    votes = step_stats.conditioned_vote(frame, np.array([5, 4, 3, 0, 1]))
    row = votes.iloc[0]
    assert (row["maj_all"], row["maj_confident"], row["n_confident"]) == (0.0, 1.0, 3)


def test_maj_at_k_limits():
    frame = _random_steps(1)
    frame["pred"] = np.where(frame["correct"], "1", frame["pred"].where(frame["pred"] != "1", "2"))
    one = step_stats.maj_at_k(frame, [1], draws=400)["maj_at_k"].iloc[0]
    assert one == pytest.approx(frame["correct"].mean(), abs=0.03)  # maj@1: mean sample accuracy
    full = step_stats.maj_at_k(frame, [10], draws=3)["maj_at_k"].iloc[0]
    exact = np.mean([step_stats.voted_correct(g) for _, g in frame.groupby("problem_id")])
    ties = sum(
        len(set(g["pred"].value_counts().pipe(lambda c: c[c == c.max()]).index)) > 1
        for _, g in frame.groupby("problem_id")
    )
    assert abs(full - exact) <= ties / 30 + 1e-9  # only tied questions may differ


def test_missing_step_columns_are_a_user_error():
    with pytest.raises(UserError, match="--log-steps"):
        step_stats.require_steps(pd.DataFrame({"correct": [True]}))
    unlogged = pd.DataFrame({"token_ids": [[1, 2]], "step_pmax": [[]], "step_rank": [[]]})
    with pytest.raises(UserError, match="RUN has no step logs; generate it with --log-steps"):
        step_stats.require_steps(unlogged, "RUN")


# -- decode sweep ------------------------------------------------------------------------


def test_sweep_files_are_validated(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_sweep(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    for text, message in [
        ("- {temperature: 0.7}", "needs a name"),
        ("[1, 2", "not valid YAML"),
        ("just text", "must map"),
        ("a b: {temperature: 1}", "plain name"),
        ("x: {cal_acc_threshold: 0.3}", "needs cal_acc_from"),
        (f"x: {{cal_acc_from: {tmp_path}/none.json}}", "does not exist"),
        (f"x: {{cal_acc_from: {bad}}}", "needs numeric top-level keys"),
    ]:
        bad.write_text(text)
        with pytest.raises(UserError, match=message):
            load_sweep(bad)


def test_sweep_reads_a_calibration_into_cal_acc(tmp_path):
    write_json(tmp_path / "calibration.json", {"A": -0.1, "B": 0.9})
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        f"cal: {{cal_acc_from: {tmp_path}/calibration.json, cal_acc_threshold: 0.25}}\n"
        "plain: {temperature: 1.0}\n"
    )
    assert load_sweep(sweep) == {
        "cal": {"cal_acc": [-0.1, 0.9, 0.25]},
        "plain": {"temperature": 1.0},
    }


def test_sweep_summary_against_hand_counts(tmp_path):
    traces = pd.DataFrame(
        {
            "problem_id": ["a", "a", "a", "b", "b", "b"],
            "pred": ["1", "1", "2", "5", "6", "7"],
            "correct": [True, True, False, False, False, True],
            "n_tokens": [10, 20, 30, 40, 50, 60],
        }
    )
    run = Run(tmp_path)
    run.write_traces(traces)
    write_json(run.timing_path, {"tokens_per_s": 12.5})
    row = summarize_run("x", run)
    assert row["mean_sample_accuracy"] == pytest.approx(0.5)
    assert row["maj@k"] == pytest.approx(0.5)  # a: "1" wins (right); b: three-way tie -> "5"
    assert row["pass@k"] == 1.0 and row["mean_tokens"] == 35.0 and row["tokens_per_s"] == 12.5


def test_decoding_report_writes_tables_figures_and_a_report_section(tmp_path):
    from thinkscope.experiments.decoding.step_report import decoding_report
    from thinkscope.runstore.sections import render_sections

    traces = _random_steps(2, n=60)
    traces["n_tokens"] = [len(r) for r in traces["step_rank"]]
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.write_traces(traces)
    bin_run = Run(tmp_path / "bin3")
    bin_run.path.mkdir()
    bin_run.write_traces(traces)
    (bin_run.path / "config.yaml").write_text("confidence_bin_only: 3\n")
    report = decoding_report(run.path, [bin_run.path], threshold=0.6)
    low = step_stats.low_confidence_counts(traces, 0.6)
    assert report.tables["low_confidence"]["n"].sum() == len(traces)
    assert report.summary["mean_low_confidence_steps"] == pytest.approx(low.mean())
    assert set(report.tables["maj_by_bin"]["bin"]) == {3}
    assert sorted(p.name for p in (report.path / "figures").iterdir()) == sorted(
        ["low_confidence.png", "off_top.png", "mean_rank.png", "votes.png", "maj_by_bin.png"]
    )
    html = render_sections(run.path)
    assert "Decoding: confidence and sampled ranks" in html
    assert html.count("data:image/png;base64,") == 5
    assert "pmax &lt; 0.6" in html


def test_decoding_report_refuses_a_bad_threshold(tmp_path):
    from thinkscope.experiments.decoding.step_report import decoding_report

    with pytest.raises(UserError, match="threshold"):
        decoding_report(tmp_path, threshold=1.5)
