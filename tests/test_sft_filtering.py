"""traces -> datasets -> LoRA adapters -> merged models -> compare, on a tiny random llama."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("trl")

from thinkscope.core.errors import UserError  # noqa: E402
from thinkscope.experiments.sft_filtering import SftFilteringConfig, run_sft_filtering  # noqa: E402
from thinkscope.models import load_model  # noqa: E402


@pytest.mark.slow
def test_sft_filtering_end_to_end(tiny_model_dir, tmp_path):
    config = SftFilteringConfig(
        model=str(tiny_model_dir),
        task="gsm8k",
        train_task="gsm8k:train",
        questions=2,
        n=2,
        max_new_tokens=4,
        max_steps=2,
        batch_size=2,
        max_length=512,
        eval_questions=2,
        eval_n=2,
    )
    table = run_sft_filtering(config, tmp_path / "exp").set_index("model")
    assert list(table.index) == ["base", "reference", "correct", "all", "dtr-filtered"]
    traces = pd.read_parquet(tmp_path / "exp/traces/traces.parquet")
    all_rows = (tmp_path / "exp/data/traces/sft_all.jsonl").read_text().splitlines()
    assert table.loc["all", "train_rows"] == len(traces) == len(all_rows) == 4
    assert table.loc["reference", "train_rows"] == 2
    n_correct = int(traces["correct"].sum())
    if n_correct == 0:  # a random model: the correct-only arms have nothing to train on
        assert table.loc["correct", "note"].startswith("not trained")
        assert "not trained" in table.loc["dtr-filtered", "note"]
    for arm in ("reference", "all"):
        state = json.loads((tmp_path / f"exp/train/{arm}/trainer_state.json").read_text())
        assert state["global_step"] == 2  # the same budget for every arm
        load_model(str(tmp_path / f"exp/train/{arm}/merged"))  # a standalone model
        cmp = pd.read_csv(tmp_path / f"exp/compare/{arm}/summary.csv").set_index("model")
        assert cmp.loc["tuned", "accuracy"] == table.loc[arm, "accuracy"]
        assert 0 <= table.loc[arm, "mcnemar_p"] <= 1
    base = pd.read_parquet(tmp_path / "exp/compare/base-runs/base/traces.parquet")
    tuned = pd.read_parquet(tmp_path / "exp/compare/all/runs/tuned/traces.parquet")
    assert list(base["prompt"]) == list(tuned["prompt"])
    assert list(base["sample_seed"]) == list(tuned["sample_seed"])
    assert (tmp_path / "exp/figures/sft_filtering.png").is_file()
    again = run_sft_filtering(config, tmp_path / "exp").set_index("model")  # resumes: no work
    pd.testing.assert_frame_equal(again, table)


def test_bad_config_is_one_line():
    with pytest.raises(UserError, match="--min-dtr"):
        SftFilteringConfig.parse(min_dtr=2.0)
