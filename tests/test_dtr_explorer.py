"""The DTR explorer's pipeline: ``score --max-tokens`` (its DTR_MAX_TOKENS) and the
``dataset build --preset dtr-explorer`` filters."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from dataset_fixture import make_run
from thinkscope.cli.app import main
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.metrics import parse_metrics
from thinkscope.runstore.folder import Run
from thinkscope.scoring.stage import score_run
from tiny import tiny_lm

N = 4
METRICS = "dtr[g=0.002],length,confidence"


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama")


def _cut(run_dir, lm, n: int) -> None:
    """Rewrite a run as if every trace had been generated only to its first ``n`` tokens."""
    run = Run.open(run_dir)
    frame = run.traces()
    frame["token_ids"] = [np.asarray(t)[:n] for t in frame["token_ids"]]
    frame["token_logprobs"] = [np.asarray(t)[:n] for t in frame["token_logprobs"]]
    frame["completion"] = [
        lm.tokenizer.decode(list(t), skip_special_tokens=True) for t in frame["token_ids"]
    ]
    run.write_traces(frame)


def test_max_tokens_scores_as_if_the_traces_were_cut(tmp_path, lm):
    config = GenerateConfig(
        model="tiny", task="gsm8k", questions=3, n=2, max_new_tokens=10, temperature=1.0
    )
    generate_run(config, tmp_path / "a", lm=lm, show_progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    _cut(tmp_path / "b", lm, N)
    specs = parse_metrics(METRICS)
    lengths = Run.open(tmp_path / "a").traces()["token_ids"].map(len)
    assert (lengths > N).any()  # some traces are longer than N: the cut matters
    capped = score_run(lm, tmp_path / "a", specs, show_progress=False, max_tokens=N)
    cut = score_run(lm, tmp_path / "b", specs, show_progress=False)
    columns = [s.column for s in specs]
    pd.testing.assert_frame_equal(capped[columns], cut[columns])
    assert capped["length"].max() == N
    tokens_a = pd.read_parquet(tmp_path / "a" / "token_metrics.parquet")
    tokens_b = pd.read_parquet(tmp_path / "b" / "token_metrics.parquet")
    for name in ("settling_depth[g=0.002]", "token_conf"):
        for x, y in zip(tokens_a[name], tokens_b[name], strict=True):
            np.testing.assert_array_equal(x, y)
    entry = json.loads((tmp_path / "a" / "scores.json").read_text())["columns"]["length"]
    assert entry["max_tokens"] == N
    # another cap (here: none) is another request: the columns are scored again, in full
    full = score_run(lm, tmp_path / "a", specs, show_progress=False)
    assert full["length"].tolist() == lengths.tolist()
    assert not np.allclose(full["self-certainty"], capped["self-certainty"])


def test_max_tokens_below_one_is_one_line(tmp_path, capsys):
    sys.argv = ["thinkscope", "score", str(tmp_path), "--max-tokens", "0"]
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.count("\n") == 0
    assert err.startswith("error: --max-tokens") and "greater than or equal to 1" in err


def _build(tmp_path, capsys, *options: str) -> dict:
    run = make_run(tmp_path / "run")
    out = tmp_path / f"ds{len(list(tmp_path.iterdir()))}"
    sys.argv = ["thinkscope", "dataset", "build", str(run), "--out", str(out), *options]
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0, capsys.readouterr().err
    summary = json.loads((out / "dataset.json").read_text())
    rows = [json.loads(line) for line in (out / "sft_all.jsonl").read_text().splitlines()]
    summary["kept"] = sorted((r["problem_id"], r["sample_idx"]) for r in rows)
    summary["card"] = (out / "README.md").read_text()
    return summary


def test_the_dtr_explorer_preset_applies_its_strict_defaults(tmp_path, capsys, monkeypatch):
    """Worked by hand on tests/dataset_fixture.py: correct 7 -> tagged 5 -> not truncated 4
    -> DTR >= 0.32 keeps q0/0, q0/1 and restores q1's best correct (q1/3, log-prob -0.1)."""
    monkeypatch.setenv("THINKSCOPE_PROGRESS", "0")
    summary = _build(tmp_path, capsys, "--preset", "dtr-explorer")
    assert summary["kept"] == [("q0", 0), ("q0", 1), ("q1", 3)]
    steps = [(s["flag"], s["before"], s["kept"], s["restored"]) for s in summary["steps"]]
    assert steps == [
        ("--require-correct", 11, 7, 0),
        ("--require-answer-tag", 7, 5, 0),
        ("--truncated exclude", 5, 4, 0),
        ("--min-dtr", 4, 3, 1),
        ("--keep-per-question", 3, 3, 0),
    ]
    resolved = summary["filters"]
    assert resolved["preset"] == "dtr-explorer" and resolved["min_dtr"] == 0.32
    assert resolved["keep_per_question"] == 4 and resolved["truncated"] == "exclude"
    assert "- `preset`: `dtr-explorer`" in summary["card"]
    assert "- `min_dtr`: `0.32`" in summary["card"]


def test_an_explicit_option_overrides_the_preset(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THINKSCOPE_PROGRESS", "0")
    one = _build(tmp_path, capsys, "--preset", "dtr-explorer", "--keep-per-question", "1")
    assert one["kept"] == [("q0", 0), ("q1", 3)]
    # an explicit value equal to the plain default still wins over the preset's
    untagged = _build(tmp_path, capsys, "--preset", "dtr-explorer", "--no-require-answer-tag")
    assert untagged["kept"] == [("q0", 0), ("q0", 1), ("q1", 3), ("q2", 0)]
    assert untagged["filters"]["require_answer_tag"] is False
    plain = _build(tmp_path, capsys, "--require-correct")  # no preset: only what was given
    assert plain["filters"] == {"require_correct": True}
    assert "preset" not in plain["card"]


def test_an_unknown_preset_is_one_line(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    sys.argv = ["thinkscope", "dataset", "build", str(run), "--out", str(tmp_path / "d")]
    sys.argv += ["--preset", "strict"]
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err == "error: --preset: Input should be 'dtr-explorer'"
    assert not (tmp_path / "d").exists()


def _refusal(capsys, *argv) -> str:
    sys.argv = ["thinkscope", *map(str, argv)]
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.count("\n") == 0, err
    return err


@pytest.fixture
def no_model_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the refusal")

    for where in ("thinkscope.models.load_model", "thinkscope.sft.trainer.load_4bit"):
        monkeypatch.setattr(where, refuse)


def test_load_in_4bit_is_refused_on_cpu_before_loading(
    tmp_path, capsys, monkeypatch, no_model_load
):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    data = tmp_path / "sft.jsonl"
    data.write_text('{"prompt": "Q", "response": "A"}\n')
    err = _refusal(capsys, "train", "--dataset", data, "--out", tmp_path / "t", "--load-in-4bit")
    assert err == "error: --load-in-4bit needs a CUDA GPU (bitsandbytes' 4-bit kernels): drop it"
    assert not (tmp_path / "t").exists()


def test_load_in_4bit_without_bitsandbytes_is_one_line(
    tmp_path, capsys, monkeypatch, no_model_load
):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else find_spec(n, *a)
    )
    data = tmp_path / "sft.jsonl"
    data.write_text('{"prompt": "Q", "response": "A"}\n')
    err = _refusal(capsys, "train", "--dataset", data, "--out", tmp_path / "t", "--load-in-4bit")
    assert err == "error: --load-in-4bit needs the bitsandbytes package: pip install bitsandbytes"
    assert not (tmp_path / "t").exists()


def test_load_in_4bit_is_a_lora_option():
    from thinkscope.core.errors import UserError
    from thinkscope.sft.trainer import TrainConfig

    assert TrainConfig(dataset="d", load_in_4bit=True).model_dump()["load_in_4bit"] is True
    with pytest.raises(UserError, match="--load-in-4bit shapes a LoRA adapter"):
        TrainConfig.parse(dataset="d", load_in_4bit=True, full=True)


@pytest.mark.gpu
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available()
    or __import__("importlib").util.find_spec("bitsandbytes") is None,
    reason="needs CUDA and bitsandbytes",
)
def test_qlora_trains_an_adapter_on_a_4bit_base(tiny_model_dir, tmp_path):
    import bitsandbytes as bnb
    import torch

    from thinkscope.sft.trainer import TrainConfig, build_trainer, train

    data = tmp_path / "sft.jsonl"
    rows = [{"prompt": f"Q: {a} + {a}?\nA:", "response": f" {2 * a}."} for a in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(
        model=str(tiny_model_dir), dataset=str(data), max_steps=4, batch_size=4,
        learning_rate=1e-2, lora_rank=4, lora_dropout=0.0, max_length=64, load_in_4bit=True,
    )  # fmt: skip
    trainer = build_trainer(config, tmp_path / "probe", progress=False)
    linears = [m for m in trainer.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert linears and all(m.weight.dtype == torch.uint8 for m in linears)  # packed NF4
    result = train(config, tmp_path / "q", progress=False)
    assert (result.adapter / "adapter_config.json").is_file()
    assert result.summary["global_step"] == 4 and np.isfinite(result.summary["final_loss"])
    print("qlora summary", result.summary)
