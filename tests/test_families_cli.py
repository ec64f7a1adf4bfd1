"""The command-line chain on saved tiny hybrid, state-space and MoE models: ``traces``, then
``score`` with every metric that applies, then ``dataset build``, as a user runs them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from thinkscope.cli.app import main
from tiny import HYBRID_FAMILIES, tiny_model, tiny_tokenizer


def run(*argv: str) -> None:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    assert done.value.code in (0, None)


@pytest.mark.parametrize("family", sorted(HYBRID_FAMILIES))
def test_traces_score_and_dataset_build(family, tmp_path, record_property):
    record_property("capability", "traces, score, dataset build")
    model = tmp_path / "model"
    tiny_model(family).save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    traces, dataset = tmp_path / "traces", tmp_path / "dataset"
    run(
        "traces",
        "--model",
        str(model),
        "--task",
        "gsm8k",
        "--questions",
        "2",
        "--n",
        "2",
        "--max-new-tokens",
        "6",
        "--out",
        str(traces),
    )
    frame = pd.read_parquet(traces / "traces.parquet")
    assert len(frame) == 4 and (frame["n_tokens"] > 0).all()
    attention = family != "mamba2"  # the one family here with no attention at all
    run("score", str(traces), "--metrics", "dtr,ae,fl" + (",ape" if attention else ""))
    scored = pd.read_parquet(traces / "traces.parquet")
    assert scored["dtr"].between(0, 1).all() and scored["ae"].notna().all()
    assert scored["ape"].gt(0).all() if attention else "ape" not in scored
    run(
        "dataset",
        "build",
        str(traces),
        "--out",
        str(dataset),
        "--min-dtr",
        "0",
        "--truncated",
        "keep",
    )
    rows = [json.loads(line) for line in (dataset / "sft_all.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and [r["response"] for r in rows] == frame["completion"].tolist()
