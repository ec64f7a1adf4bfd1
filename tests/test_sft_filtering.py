"""traces -> datasets -> LoRA adapters -> merged models -> compare, on a tiny random llama."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("trl")

from thinkscope.core.errors import UserError  # noqa: E402
from thinkscope.experiments.sft_filtering import (  # noqa: E402
    SftFilteringConfig,
    _traces,
    build_datasets,
    run_sft_filtering,
)
from thinkscope.models import load_model  # noqa: E402
from thinkscope.runstore.folder import Run  # noqa: E402


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
    assert not traces["correct"].any()  # a random model; correct rows: the test below
    assert table.loc["correct", "note"].startswith("not trained")
    assert "not trained" in table.loc["dtr-filtered", "note"]
    for arm in ("reference", "all"):
        state = json.loads((tmp_path / f"exp/train/{arm}/trainer_state.json").read_text())
        assert state["global_step"] == 2  # the same budget for every arm
        load_model(str(tmp_path / f"exp/train/{arm}/merged"))  # a standalone model
        cmp = pd.read_csv(tmp_path / f"exp/compare/{arm}/summary.csv").set_index("model")
        assert cmp.loc["tuned", "mean_sample_accuracy"] == table.loc[arm, "mean_sample_accuracy"]
        assert 0 <= table.loc[arm, "mcnemar_p"] <= 1
    base = pd.read_parquet(tmp_path / "exp/compare/base-runs/base/traces.parquet")
    tuned = pd.read_parquet(tmp_path / "exp/compare/all/runs/tuned/traces.parquet")
    assert list(base["prompt"]) == list(tuned["prompt"])
    assert list(base["sample_seed"]) == list(tuned["sample_seed"])
    assert (tmp_path / "exp/figures/sft_filtering.png").is_file()
    again = run_sft_filtering(config, tmp_path / "exp").set_index("model")  # resumes: no work
    pd.testing.assert_frame_equal(again, table)


def test_sft_filtering_datasets_hold_exactly_the_filtered_correct_traces(tiny_model_dir, tmp_path):
    """Traces rewritten by hand to right or wrong answers with chosen DTRs; each arm's file
    against the rows picked by hand. Fails if the correct arm takes the run's own ``correct``
    column (all False here) or keeps a wrong trace, if ``dtr-filtered`` lets a wrong trace with
    a high DTR in, ranks by the wrong end, ignores ``keep_per_question`` or skips the fallback."""
    config = SftFilteringConfig(
        model=str(tiny_model_dir),
        task="gsm8k",
        train_task="gsm8k:train",
        questions=3,
        n=4,
        max_new_tokens=4,
        min_dtr=0.3,
        keep_per_question=2,
    )
    out = tmp_path / "exp"
    run = Run.open(_traces(config, out))
    traces = run.traces()
    # question 0: three correct above min_dtr (keep the best two), a wrong one with the top
    # DTR; question 1: two correct below min_dtr (the fallback keeps the better); question 2:
    # none correct
    right = {0: 0.5, 1: 0.4, 2: 0.6, 4: 0.1, 5: 0.2}
    dtr = {**right, 3: 0.9, 6: 0.8, 7: 0.8, 8: 0.7, 9: 0.7, 10: 0.7, 11: 0.7}
    for i, value in dtr.items():
        answer = int(traces.loc[i, "gold"]) + (i not in right)
        traces.loc[i, "completion"] = f"Sample {i}: the answer is {answer}."
        traces.loc[i, "finish_reason"] = "stop"  # a whole answer, not cut at max_new_tokens
        traces.loc[i, "dtr"] = value
    run.write_traces(traces)
    files = build_datasets(config, out)

    def responses(arm):
        return [json.loads(line)["response"] for line in files[arm].read_text().splitlines()]

    assert responses("all") == list(traces["completion"])
    assert responses("correct") == [traces.loc[i, "completion"] for i in (0, 1, 2, 4, 5)]
    assert responses("dtr-filtered") == [traces.loc[i, "completion"] for i in (0, 2, 5)]


def test_bad_config_is_one_line():
    with pytest.raises(UserError, match="--min-dtr"):
        SftFilteringConfig.parse(min_dtr=2.0)
