"""Scoring run folders: columns, companion files, idempotence, resume, bad input, the CLI."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from typer.testing import CliRunner

import thinkscope
from thinkscope.cli.score import score_command
from thinkscope.core.errors import UserError
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from thinkscope.lens import token_divergences
from thinkscope.models import LM
from thinkscope.scoring import stage as scoring
from tiny import tiny_lm, tiny_model


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama")


RUN_CONFIG = GenerateConfig(
    model="tiny", task="gsm8k", questions=3, n=2, max_new_tokens=10, batch_size=8, temperature=1.0
)


@pytest.fixture
def run_dir(tmp_path, lm):
    generate_run(RUN_CONFIG, tmp_path / "run", lm=lm, show_progress=False)
    return tmp_path / "run"


def plain_jsd(lm, prompt, tokens) -> torch.Tensor:
    """``[T, L]`` JSD (nats, float64) of each layer's lens distribution to the model's own
    output, at the positions the tokens were sampled from, by plain formulas."""
    at = slice(len(prompt) - 1, len(prompt) - 1 + len(tokens))
    with torch.no_grad(), lm.record_blocks() as states:
        logits = lm.model(input_ids=torch.tensor([prompt + tokens])).logits[0, at].double()
        lens = [lm.head(s[0, at]).double() for s in states]
    p = torch.softmax(logits, -1)
    out = []
    for z in lens:
        q = torch.softmax(z, -1)
        m = (p + q) / 2
        out.append(0.5 * (p * (p / m).log()).nansum(-1) + 0.5 * (q * (q / m).log()).nansum(-1))
    return torch.stack(out, dim=1)


def plain_depth(row, g) -> int:
    for layer, value in enumerate(row, start=1):
        if value <= g:
            return layer
    return len(row)


def test_score_adds_columns_arrays_and_a_record(run_dir, lm):
    frame = thinkscope.score(
        lm,
        run_dir,
        metrics="dtr[g=0.002],length,confidence,jsd-profile",
        batch_tokens=64,
        show_progress=False,
    )
    stored = pd.read_parquet(run_dir / "traces.parquet")
    for column in ("dtr[g=0.002]", "length", "logprob", "self-certainty", "bottom10-conf"):
        assert column in stored and column in frame
    assert "jsd-profile" not in stored  # a per-layer vector, not a scalar column
    record = json.loads((run_dir / "scores.json").read_text())
    assert record["columns"]["dtr[g=0.002]"]["params"] == {"g": 0.002, "rho": 0.85, "base": "e"}
    assert record["columns"]["dtr[g=0.002]"]["model"] == lm.name
    assert record["vectors"]["jsd-profile"]["arrays"] == ["jsd_profile"]
    assert (
        record["n_layers"] == lm.n_layers and record["arrays"]["deep[g=0.002]"]["metric"] == "dtr"
    )
    tokens = pd.read_parquet(run_dir / "token_metrics.parquet")
    assert list(tokens.columns[:2]) == ["problem_id", "sample_idx"]
    clear, depths_seen = 0, set()
    for (_, row), (_, trace) in zip(tokens.iterrows(), stored.iterrows(), strict=True):
        jsd = plain_jsd(lm, list(trace.prompt_ids), list(trace.token_ids))  # [T, L] float64
        profile = torch.tensor([list(r) for r in row["jsd_profile"]], dtype=torch.float64)
        torch.testing.assert_close(profile, jsd, atol=1e-6, rtol=0)
        depths = [plain_depth(r, 0.002) for r in jsd.tolist()]
        away = [(jsd[t] - 0.002).abs().min() > 1e-5 for t in range(len(depths))]
        scored = list(row["settling_depth[g=0.002]"])
        for t, far in enumerate(away):  # float32 may flip a depth only on the threshold
            if far:
                assert scored[t] == depths[t]
                clear += 1
        depths_seen.update(depths)
        deep = math.ceil(0.85 * lm.n_layers)
        assert trace["dtr[g=0.002]"] == pytest.approx(np.mean([d >= deep for d in scored]))
        assert len(row["token_conf"]) == trace.n_tokens and len(row["jsd-profile"]) == lm.n_layers
    assert clear > 20 and len(depths_seen) > 2  # depths vary: the comparison is not trivial
    assert not (run_dir / "scoring").exists()


def test_scoring_again_does_nothing_and_new_parameters_add_columns(run_dir, lm):
    thinkscope.score(lm, run_dir, metrics="dtr", show_progress=False)
    stamp = (run_dir / "traces.parquet").stat().st_mtime_ns
    thinkscope.score(lm, run_dir, metrics="dtr", show_progress=False)
    assert (run_dir / "traces.parquet").stat().st_mtime_ns == stamp
    before = pd.read_parquet(run_dir / "traces.parquet")["dtr"]
    thinkscope.score(lm, run_dir, metrics="dtr[rho=0.5],dtr", show_progress=False)
    after = pd.read_parquet(run_dir / "traces.parquet")
    pd.testing.assert_series_equal(after["dtr"], before)
    assert "dtr[rho=0.5]" in after
    assert set(json.loads((run_dir / "scores.json").read_text())["columns"]) == {
        "dtr",
        "dtr[rho=0.5]",
    }


def test_a_killed_scoring_run_resumes_from_its_shards(run_dir, lm, monkeypatch):
    real, calls = scoring.score_batch, []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_batch", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        thinkscope.score(lm, run_dir, metrics="dtr", batch_tokens=1, show_progress=False)
    assert len(list((run_dir / "scoring").rglob("*.parquet"))) == 2
    assert "dtr" not in pd.read_parquet(run_dir / "traces.parquet")
    calls.clear()
    monkeypatch.setattr(scoring, "score_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    frame = thinkscope.score(lm, run_dir, metrics="dtr", batch_tokens=1, show_progress=False)
    assert len(calls) == 4 and frame["dtr"].notna().all()


def test_a_folder_without_traces_and_unknown_metrics_are_user_errors(tmp_path, lm, run_dir):
    with pytest.raises(UserError, match="no traces.parquet"):
        thinkscope.score(lm, tmp_path, metrics="dtr")
    with pytest.raises(UserError, match="unknown metric 'dtrr'"):
        thinkscope.score(lm, run_dir, metrics="dtr,dtrr")


def test_traces_from_another_tokenizer_are_detected(run_dir):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["completely different words, nothing about arithmetic"] * 50, trainer)
    other = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    other_lm = LM.wrap(tiny_model("llama", vocab=len(other)), other, name="other")
    with pytest.raises(UserError, match="different tokenizer"):
        thinkscope.score(other_lm, run_dir, metrics="dtr", show_progress=False)


def test_an_empty_completion_scores_nan_with_a_warning(run_dir, lm):
    frame = pd.read_parquet(run_dir / "traces.parquet")
    frame["token_ids"] = [[] if i == 0 else ids for i, ids in enumerate(frame["token_ids"])]
    frame.loc[0, ["completion", "n_tokens"]] = ["", 0]
    frame.to_parquet(run_dir / "traces.parquet", index=False)
    with pytest.warns(UserWarning, match="1 trace"):
        out = thinkscope.score(lm, run_dir, metrics="dtr,length,logprob", show_progress=False)
    assert math.isnan(out.loc[0, "dtr"]) and out.loc[0, "length"] == 0
    assert out["dtr"].iloc[1:].notna().all()


def test_in_memory_traces_are_scored_without_files(run_dir, lm):
    frame = pd.read_parquet(run_dir / "traces.parquet")
    out = thinkscope.score(lm, frame, metrics="dtr,logprob", show_progress=False)
    assert list(out.columns[-2:]) == ["dtr", "logprob"] and "dtr" not in frame
    from_run = thinkscope.score(lm, run_dir, metrics="dtr,logprob", show_progress=False)
    pd.testing.assert_series_equal(out["logprob"], from_run["logprob"])


def test_score_command(run_dir, lm, tmp_path):
    model_dir = tmp_path / "model"
    lm.model.save_pretrained(model_dir)
    lm.tokenizer.save_pretrained(model_dir)
    app = typer.Typer()
    app.command()(score_command)
    app.command("noop")(lambda: None)  # two commands: `score` is addressed by name, as in the CLI
    result = CliRunner().invoke(
        app,
        [
            "score-command",
            str(run_dir),
            "--metrics",
            "dtr[g=0.002],confidence",
            "--model",
            str(model_dir),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "self-certainty" in result.output and "dtr[g=0.002]" in result.output
    assert {"dtr[g=0.002]", "tail-conf"} <= set(pd.read_parquet(run_dir / "traces.parquet").columns)


@pytest.mark.integration
def test_bundled_model_run_is_scored(tmp_path, bundled_lm):
    config = GenerateConfig(
        task="gym:basic_arithmetic", questions=2, n=2, max_new_tokens=24, prompt_style="fewshot"
    )
    generate_run(config, tmp_path / "run", lm=bundled_lm, show_progress=False)
    frame = thinkscope.score(bundled_lm, tmp_path / "run", metrics="all", show_progress=False)
    assert frame["dtr"].between(0, 1).all()
    assert frame["mean-settling-depth"].between(1, 30).all()
    trace = frame.iloc[0]
    ids = list(trace.prompt_ids) + list(trace.token_ids)
    jsd = token_divergences(bundled_lm, ids, len(trace.prompt_ids))
    with torch.no_grad(), bundled_lm.record_blocks() as states:
        logits = bundled_lm.model(input_ids=torch.tensor([ids])).logits[0].double()
    p = len(trace.prompt_ids)
    for t in (0, len(trace.token_ids) - 1):  # plain float64 reference at two tokens, all layers
        lp = torch.log_softmax(logits[p + t - 1], -1)
        for layer in range(bundled_lm.n_layers):
            with torch.no_grad():
                z = bundled_lm.head(states[layer][0, p + t - 1]).double()
            lq = torch.log_softmax(z, -1)
            log_m = torch.log(0.5 * (lp.exp() + lq.exp()))
            ref = 0.5 * (lp.exp() * (lp - log_m)).sum() + 0.5 * (lq.exp() * (lq - log_m)).sum()
            assert abs(float(jsd[t, layer]) - float(ref)) < 1e-5
    logprobs = torch.log_softmax(logits[p - 1 : -1], -1).gather(
        1, torch.tensor(trace.token_ids)[:, None]
    )
    assert trace["logprob"] == pytest.approx(float(logprobs.mean()), abs=1e-5)


def test_resuming_a_finished_run_is_idempotent_and_another_config_is_an_error(run_dir, lm):
    config = RUN_CONFIG  # the run_dir fixture's
    stamp = (run_dir / "traces.parquet").stat().st_mtime_ns
    generate_run(config, run_dir, resume=True, lm=lm, show_progress=False)
    assert (run_dir / "traces.parquet").stat().st_mtime_ns == stamp
    assert "the run is complete; nothing to do" in (run_dir / "log.txt").read_text()
    with pytest.raises(UserError, match="differs in questions"):
        generate_run(
            config.model_copy(update={"questions": 4}),
            run_dir,
            resume=True,
            lm=lm,
            show_progress=False,
        )
    with pytest.raises(UserError, match="finished run; choose another --out"):
        generate_run(config, run_dir, lm=lm, show_progress=False)
