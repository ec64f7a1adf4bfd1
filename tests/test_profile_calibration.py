"""The calibration section: accuracy by low-rank tokens against a hand count, the bootstrap of
the power law against refits of resampled problems, honest degradation, and the section on a
tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.tiny import tiny_lm

from thinkscope.core.errors import UserError
from thinkscope.experiments.decoding.calibrate import (
    CalibrationConfig,
    power_law_points,
    summarize,
)
from thinkscope.models.spec import ModelSpec
from thinkscope.profile.protocol import BaseRun, Protocol
from thinkscope.profile.section import Context
from thinkscope.profile.sections import calibration
from thinkscope.stats import fit_power_law
from thinkscope.stats.auroc import bootstrap_indices


def _traces(ranks: list[list[int]], correct: list[bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "problem_id": [f"q{i % 3}" for i in range(len(ranks))],
            "step_rank": ranks,
            "correct": correct,
        }
    )


def test_accuracy_by_low_rank_tokens_matches_a_hand_count():
    ranks = [[1, 1], [1, 2], [3, 1, 2], [1], [2, 2], [1, 1, 1], [1, 4], [1], [1, 1]]
    correct = [True, False, True, True, False, False, True, True, False]
    stats, table = calibration.low_rank(_traces(ranks, correct))
    # rank >= 2 counts: 0 1 2 0 2 0 1 0 0 -> zero: samples 0 3 5 7 8, some: 1 2 4 6
    assert stats["accuracy.no_low_rank"].value == pytest.approx(3 / 5)
    assert stats["accuracy.low_rank"].value == pytest.approx(2 / 4)
    assert stats["accuracy.low_rank_drop"].value == pytest.approx(3 / 5 - 2 / 4)
    lo, hi = stats["accuracy.low_rank_drop"].lo, stats["accuracy.low_rank_drop"].hi
    assert lo <= 0.1 <= hi and lo < hi
    # per question (q = i % 3): zero-count samples q0: 0 3; q1: 7; q2: 5 8 -> 1, 1, 0
    assert stats["accuracy.no_low_rank"].per_question == {"q0": 1.0, "q1": 1.0, "q2": 0.0}
    assert stats["low_rank.tokens"].value == pytest.approx(6 / 9)
    assert stats["low_rank.samples"].value == pytest.approx(4 / 9)
    assert table["n"].tolist()[:3] == [5, 2, 2]


def test_low_rank_statistics_degrade_with_their_reasons():
    stats, _ = calibration.low_rank(_traces([[1, 1], [1], [1, 1, 1]], [True, False, True]))
    assert stats["accuracy.low_rank"].value is None
    assert stats["accuracy.low_rank_drop"].value is None
    assert "no sample sampled a token at rank >= 2" in stats["accuracy.low_rank_drop"].note
    assert stats["accuracy.no_low_rank"].value == pytest.approx(2 / 3)
    stats, _ = calibration.low_rank(_traces([[1, 2], [1], [3]], [False, False, False]))
    assert stats["accuracy.low_rank_drop"].note == "every sample is wrong"
    assert stats["accuracy.low_rank"].value == 0.0


def _positions(problems: int, seed: int = 0, spread: bool = True) -> pd.DataFrame:
    """Synthetic teacher-forced positions: top-5 probabilities over several decades (or all
    in one bin), the reference at a random rank within the top 5 or beyond."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(problems):
        t = int(rng.integers(3, 9))
        if spread:
            probs = np.sort(10 ** rng.uniform(-3, 0, (t, 5)), axis=1)[:, ::-1] / 2
        else:
            probs = np.full((t, 5), 0.01)
        ids = np.tile(np.arange(5), (t, 1)) + 10 * np.arange(t)[:, None]
        rank = rng.integers(1, 8, t)
        ref = np.where(rank <= 5, ids[np.arange(t), np.minimum(rank, 5) - 1], 999)
        rows.append(
            {
                "problem_id": f"p{i}",
                "ref_ids": ref.tolist(),
                "top_ids": ids.tolist(),
                "top_probs": probs.tolist(),
                "ref_rank": rank.tolist(),
                "ref_prob": probs[:, 0].tolist(),
            }
        )
    return pd.DataFrame(rows)


def _fit_of(positions: pd.DataFrame, min_pairs: int) -> tuple[float, float]:
    probs = np.concatenate([np.asarray(list(p)) for p in positions["top_probs"]])
    ids = np.concatenate([np.asarray(list(i)) for i in positions["top_ids"]])
    ref = np.concatenate([np.asarray(r) for r in positions["ref_ids"]])
    points = power_law_points(probs, ids == ref[:, None], min_pairs)
    try:
        return fit_power_law(points["p"], points["c"])
    except ValueError:
        return np.nan, np.nan


def test_power_law_replicates_refit_the_resampled_problems():
    positions = _positions(12)
    replicates = calibration.power_law_replicates(positions, min_pairs=3, resamples=6, seed=4)
    plan = np.concatenate(list(bootstrap_indices(len(positions), 6, 4)))
    expected = [_fit_of(positions.iloc[idx].reset_index(drop=True), 3) for idx in plan]
    np.testing.assert_allclose(replicates, expected, rtol=1e-9, atol=1e-12)
    assert len({round(b, 9) for b in replicates[:, 1]}) == 6  # the resamples differ


def test_calibration_stats_match_the_library_summary_and_a_hand_count():
    positions = _positions(10)
    config = CalibrationConfig(task="t", top_k=5, min_pairs=3)
    stats, tables, summary = calibration.calibration(positions, config, "m")
    reference = summarize(positions, config)
    assert stats["power_law.B"].value == pytest.approx(reference["B"])
    assert stats["power_law.A"].value == pytest.approx(reference["A"])
    assert stats["power_law.B"].lo < stats["power_law.B"].value < stats["power_law.B"].hi
    ranks = np.concatenate([np.asarray(r) for r in positions["ref_rank"]])
    pmax = np.concatenate([np.asarray(list(p))[:, 0] for p in positions["top_probs"]])
    assert stats["top1.accuracy"].value == pytest.approx((ranks == 1).mean())
    assert stats["top1.overconfidence"].value == pytest.approx(pmax.mean() - (ranks == 1).mean())
    assert [row["tokens"] for row in tables["grid"]] == [*reference["grid"]["count"], len(ranks)]
    assert len(tables["power law"]) == len(reference["fit_points"]["p"])
    assert summary["B"] == stats["power_law.B"].value


def test_a_power_law_without_enough_bins_is_undefined_and_not_drawn(tmp_path):
    positions = _positions(4, spread=False)
    config = CalibrationConfig(task="t", top_k=5, min_pairs=3)
    stats, tables, summary = calibration.calibration(positions, config, "m")
    assert stats["power_law.B"].value is None and "too few (p, c) bins" in stats["power_law.B"].note
    assert "B" not in summary and all(row["fit"] is None for row in tables["power law"])
    assert stats["top1.accuracy"].value is not None
    _, by_count = calibration.low_rank(_traces([[1], [1, 1]], [True, False]))
    ctx = Context(Protocol(), ModelSpec(), tmp_path, tmp_path / "s", tmp_path, lambda: None)
    figures, notes = calibration._figures(ctx, summary, by_count)
    assert [f.file for f in figures] == ["s/figures/calibration_grid.png"]
    assert len(notes) == 2  # no fit to draw; one count only: no bar chart


def test_the_section_on_a_tiny_model_measures_and_rereads(tmp_path):
    from thinkscope.generation.pipeline import GenerateConfig, generate_run

    lm = tiny_lm("llama", seed=1)
    run = BaseRun(questions=3, n=2, max_new_tokens=4, prompt_style="cot", fewshot=0)
    protocol = Protocol(
        budget="custom",
        run=run,
        sections={"calibration": {"questions": 3}},
    )
    config = GenerateConfig(model="tiny", **run.model_dump())
    base = generate_run(config, tmp_path / "run", lm=lm, show_progress=False).path
    folder = tmp_path / "sections" / "calibration"
    folder.mkdir(parents=True)
    ctx = Context(protocol, ModelSpec(model="tiny"), tmp_path, folder, base, lambda: lm)
    result = calibration.measure(ctx)
    assert "demo-arith has no reference solutions" in result.notes[0]
    assert "3 of gsm8k:train's" in result.notes[0]
    forced = pd.read_parquet(folder / calibration.POSITIONS)["problem_id"].tolist()
    assert forced == [f"gsm8k-train-{i}" for i in range(3)]  # in problem order
    for name in ("top1.accuracy", "low_rank.tokens", "accuracy.no_low_rank"):
        assert name in result.stats
    assert result.headline == ["power_law.B", "accuracy.low_rank_drop"]
    assert result.stats["accuracy.low_rank_drop"].note  # the tiny model is always wrong
    for figure in result.figures:
        assert (tmp_path / figure.file).is_file()
    assert "calibration_grid" in {f.file.rsplit("/", 1)[-1][:-4] for f in result.figures}
    json.dumps(result.to_json(), allow_nan=False)

    def no_model():
        raise AssertionError("the rerun must reuse the teacher-forced positions")

    again = calibration.measure(Context(protocol, ctx.spec, tmp_path, folder, base, no_model))
    assert again.to_json() == result.to_json()


def test_a_protocol_without_reference_solutions_fails_before_the_model_loads(tmp_path):
    protocol = Protocol(sections={"calibration": {"questions": 2, "reference_task": "demo-arith"}})
    ctx = Context(protocol, ModelSpec(), tmp_path, tmp_path, tmp_path, lambda: 1 / 0)
    sizes = protocol.sizes("calibration")
    with pytest.raises(UserError, match="no reference solutions to teacher-force in demo-arith$"):
        calibration.reference_config(ctx, sizes)
