"""Think@n, Cons@n and DeepConf on the vLLM backend, with a CPU stand-in for ``vllm.LLM``
(:mod:`fake_vllm`: thinkscope's sampler behind vLLM's request/response shapes, with a block
prefix cache). What vLLM itself does on a GPU is in ``test_backends_gpu.py``."""

import math

import numpy as np
import pandas as pd
import pytest

import fake_vllm
from select_fixture import arithmetic_task, small_config
from thinkscope.generation.backends import make_backend
from thinkscope.generation.backends.vllm import VLLMBackend, continuation_seed
from thinkscope.generation.pipeline import sample_seed
from thinkscope.generation.sampler import SamplingParams
from thinkscope.models import load_model
from thinkscope.models.spec import ModelSpec
from thinkscope.select import (
    Pool,
    PrefixDTR,
    PrefixSelfCertainty,
    cons_at_n,
    kept_count,
    staged,
    think_at_n,
    token_confidences,
)
from thinkscope.select.experiment import METHODS, run_selection
from tiny import tiny_model, tiny_tokenizer

N, MAX_NEW, G, RHO = 6, 12, 0.0013, 0.75  # tiny random models: JSDs of 0.001-0.003 nats


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny llama saved with 21 EOS ids (lengths vary), so vLLM and HF stop alike."""
    path = tmp_path_factory.mktemp("tiny-eos")
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *range(40, 60)]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def lm(model_dir):
    return load_model(str(model_dir))


@pytest.fixture(scope="module")
def pool(lm):
    texts = ["What is 3 + 5?", "Calculate 12 - 7. Think step by step, then answer."]
    prompts = [lm.tokenizer(t)["input_ids"] for t in texts]
    seeds = [[sample_seed(0, f"q{q}", k) for k in range(N)] for q in range(len(texts))]
    params = SamplingParams(temperature=1.0, max_new_tokens=MAX_NEW, top_logprobs=20)
    return Pool(lm, prompts, seeds, params)


@pytest.fixture
def engine(lm, monkeypatch):
    monkeypatch.setattr(fake_vllm.FakeLLM, "lm", lm)
    return VLLMBackend.around(fake_vllm.FakeLLM(), lm.tokenizer, lm.eos_token_ids)


def by_question(pool, samples, values):
    out = [0] * pool.questions
    for (q, _), value in zip(samples, values, strict=True):
        out[q] += value
    return out


def test_cons_at_n_on_the_engine_draws_the_samplers_samples(pool, engine):
    hf, mine = cons_at_n(pool), staged.cons_at_n(pool, engine)
    for q in range(2):
        for k in range(N):
            a, b = hf.completions[q][k], mine.completions[q][k]
            assert (a.token_ids, a.top_ids, a.finish_reason) == (
                b.token_ids,
                b.top_ids,
                b.finish_reason,
            )
            assert b.logprobs == pytest.approx(a.logprobs, abs=1e-6)
    assert mine.tokens() == hf.tokens() and mine.voters == hf.voters
    (call,) = engine.llm.calls
    assert [r["params"]["seed"] for r in call] == [s for row in pool.seeds for s in row]
    reported = by_question(pool, pool.samples(), [r["prefill"] for r in call])
    assert mine.prefill_tokens == reported  # what the engine ran, not what the sampler would
    assert reported != [N * len(p) for p in pool.prompts]  # the cache served the siblings


@pytest.mark.parametrize("prefix", [1, 5])
@pytest.mark.parametrize(
    "make_score",
    [
        lambda lm: PrefixDTR(lm, g=G, rho=RHO),
        lambda lm: PrefixSelfCertainty(lm),
    ],
    ids=["dtr", "self-certainty"],
)
def test_think_at_n_on_the_engine_keeps_what_the_hf_path_keeps(pool, engine, prefix, make_score):
    hf = think_at_n(pool, make_score(pool.lm), prefix, keep_ratio=0.5)
    score = make_score(pool.lm)
    mine = staged.think_at_n(pool, engine, score, prefix, keep_ratio=0.5, batch_size=5)
    # the lens scores of the engine's prefixes are the HF sampler's, so the selection is too
    assert mine.scores == [pytest.approx(row, abs=1e-5) for row in hf.scores]
    assert mine.voters == hf.voters
    if prefix > 1:  # one token: every sample of a question has the same first distribution
        assert len({s for row in hf.scores for s in row}) > 2
    assert mine.lens_flops == hf.lens_flops > 0
    first, second = engine.llm.calls
    samples = pool.samples()
    assert [(r["prompt"], r["params"]["max_tokens"]) for r in first] == [
        (pool.prompts[q], prefix) for q, _ in samples
    ]
    kept = [q * N + k for q in range(2) for k in hf.voters[q]]
    go_on = [i for i in kept if first[i]["finish"] == "length" and prefix < MAX_NEW]
    # continued: exactly the kept samples cut by the prefix limit, from their exact prefix ids
    assert [r["prompt"] for r in second] == [
        pool.prompts[i // N] + first[i]["tokens"] for i in go_on
    ]
    assert [r["params"]["seed"] for r in second] == [
        continuation_seed(pool.seeds[i // N][i % N]) for i in go_on
    ]
    assert [r["params"]["max_tokens"] for r in second] == [MAX_NEW - prefix] * len(go_on)
    assert all(r["prefill"] <= fake_vllm.BLOCK for r in second)  # prompt + prefix from the cache
    rest = dict(zip(go_on, second, strict=True))
    for i, (q, k) in enumerate(samples):
        done = mine.completions[q][k]
        assert done.token_ids == first[i]["tokens"] + rest.get(i, {}).get("tokens", [])
        if i in kept:
            assert done.finish_reason != "pruned"
        else:  # the weak: never continued, their prefix counted, as on the HF path
            assert done.token_ids == hf.completions[q][k].token_ids
            assert done.finish_reason == hf.completions[q][k].finish_reason
    tokens = by_question(pool, samples, [len(r["tokens"]) for r in first])
    tokens = [
        t + c
        for t, c in zip(
            tokens,
            by_question(pool, [samples[i] for i in go_on], [len(r["tokens"]) for r in second]),
            strict=True,
        )
    ]
    assert mine.tokens() == tokens and sum(tokens) < N * 2 * MAX_NEW
    prefill = by_question(pool, samples, [r["prefill"] for r in first])
    prefill = [
        p + c
        for p, c in zip(
            prefill,
            by_question(pool, [samples[i] for i in go_on], [r["prefill"] for r in second]),
            strict=True,
        )
    ]
    assert mine.prefill_tokens == prefill


@pytest.mark.parametrize("round_tokens", [1, 3])
def test_deepconf_online_on_the_engine_stops_at_the_first_window_drop(pool, engine, round_tokens):
    warmup, eta, window = 2, 0.5, 3
    gen = staged.deepconf_online(pool, engine, warmup, eta, window, round_tokens)
    stopped = 0
    for q in range(2):

        def lowest(c):
            conf = token_confidences(c).tolist()
            return min(
                np.mean(conf[max(0, t - window) : t])
                for t in range(min(window, len(conf)), len(conf) + 1)
            )

        bar = np.percentile([lowest(gen.completions[q][k]) for k in range(warmup)], 100 * (1 - eta))
        for k in range(warmup, N):
            done = gen.completions[q][k]
            conf = token_confidences(done).tolist()
            drops = [t for t in range(window, len(conf) + 1) if np.mean(conf[t - window : t]) < bar]
            if done.finish_reason != "pruned":
                assert not drops or drops[0] == len(conf)  # a drop on its last token ends it
                assert done.finish_reason == "stop" or len(conf) == MAX_NEW
                continue
            stopped += 1  # stopped at the first drop, within that drop's round
            if drops and drops[0] == len(conf):  # cut on its last token: it had not ended
                assert done.token_ids[-1] not in pool.lm.eos_token_ids and len(conf) < MAX_NEW
            assert (
                drops and drops[0] <= len(conf) <= math.ceil(drops[0] / round_tokens) * round_tokens
            )
            if round_tokens == 1:
                assert len(conf) == drops[0]  # exactly where the HF path stops
        voters = [
            k
            for k in range(N)
            if gen.completions[q][k].finish_reason != "pruned"
            and lowest(gen.completions[q][k]) >= bar
        ]
        assert gen.voters[q] == voters
    assert stopped > 0
    for call in engine.llm.calls[2:]:  # continuations: from the sample's exact tokens so far
        for request in call:
            q = next(q for q, p in enumerate(pool.prompts) if request["prompt"][: len(p)] == p)
            grown = request["prompt"][len(pool.prompts[q]) :] + request["tokens"]
            assert any(c.token_ids[: len(grown)] == grown for c in gen.completions[q][warmup:])
            assert request["prefill"] <= fake_vllm.BLOCK
    assert gen.tokens() == [sum(len(c.token_ids) for c in row) for row in gen.completions]


def test_the_engine_receives_the_loading_options(model_dir, monkeypatch, lm):
    fake_vllm.install(monkeypatch, lm)
    spec = ModelSpec(
        model=str(model_dir),
        dtype="bfloat16",
        revision="r1",
        trust_remote_code=True,
        attn_implementation="flash_attention_2",
    )
    backend = make_backend("vllm", spec, seed=7, gpu_memory_utilization=0.5)
    (made,) = fake_vllm.FakeLLM.made
    assert {
        k: made[k]
        for k in (
            "dtype",
            "revision",
            "tokenizer_revision",
            "trust_remote_code",
            "attention_backend",
        )
    } == {
        "dtype": "bfloat16",
        "revision": "r1",
        "tokenizer_revision": "r1",
        "trust_remote_code": True,
        "attention_backend": "FLASH_ATTN",
    }
    assert made["enable_prefix_caching"] and made["logprobs_mode"] == "raw_logprobs"
    assert (made["seed"], made["gpu_memory_utilization"]) == (7, 0.5)
    assert backend.eos == sorted(lm.eos_token_ids)  # the saved generation config's 21 ids


def test_think_at_n_command_runs_on_vllm_with_the_hf_columns(model_dir, lm, tmp_path, monkeypatch):
    config = small_config(arithmetic_task(tmp_path), model=str(model_dir), repeats=1, g=G, rho=RHO)
    hf = run_selection(
        config.model_copy(update={"backend": "hf"}), tmp_path / "hf", lm=lm, show_progress=False
    )
    fake_vllm.install(monkeypatch, lm)
    mine = run_selection(
        config.model_copy(update={"backend": "vllm", "dtype": "float32"}),
        tmp_path / "vllm",
        lm=lm,
        show_progress=False,
    )
    assert list(mine.columns) == list(hf.columns) and list(mine["method"]) == list(METHODS)
    (made,) = fake_vllm.FakeLLM.made
    assert made["dtype"] == "float32" and made["gpu_memory_utilization"] < 0.85
    assert "backend: vllm" in (tmp_path / "vllm" / "log.txt").read_text()
    same = ["accuracy", "tokens", "voters"]  # Cons@n and what reuses it: the same samples
    for method in ("one-sample", "cons@n", "deepconf-offline"):
        pd.testing.assert_series_equal(
            mine.set_index("method").loc[method, same], hf.set_index("method").loc[method, same]
        )
    think = mine.set_index("method").loc["think@n"]
    assert think["tokens"] < mine.set_index("method").loc["cons@n", "tokens"]
    assert think["voters"] == kept_count(4, 0.5) and think["lens_gflop"] > 0
