"""The vLLM backend on a real GPU (marked ``gpu``; skipped without CUDA and vLLM)."""

import importlib.util

import pytest
import torch

from thinkscope.generation import SamplingParams
from thinkscope.generation.pipeline import GenerateConfig, generate_unit
from thinkscope.models import load_model
from thinkscope.tasks.loaders import load_problems

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
        reason="needs CUDA and vLLM",
    ),
]


@pytest.fixture(scope="module")
def engine():
    from thinkscope.generation.backends.vllm import VLLMBackend

    return VLLMBackend("smollm2-135m", gpu_memory_utilization=0.4)


def test_vllm_fills_the_run_columns(engine):
    config = GenerateConfig(
        task="demo-arith", questions=3, n=4, max_new_tokens=24, top_logprobs=5, backend="vllm"
    )
    traces, result = generate_unit(None, load_problems("demo-arith", 3), config, engine)
    assert len(traces) == 12 and result.generated_tokens == sum(t.n_tokens for t in traces)
    for trace in traces:
        assert len(trace.token_logprobs) == len(trace.token_ids) == len(trace.top_ids)
        assert all(len(top) == 5 for top in trace.top_ids)
    assert len({tuple(t.token_ids) for t in traces}) > 3  # per-sample seeds differ


def test_vllm_samples_repeat_with_their_seeds_and_carry_the_models_logprobs(engine):
    prompt = engine.tokenizer("Question: what is 3 + 5?\nAnswer:")["input_ids"]
    params = SamplingParams(temperature=0.8, max_new_tokens=16)
    first = engine.complete([prompt] * 4, [1, 2, 3, 4], params)
    again = engine.complete([prompt] * 4, [1, 2, 3, 4], params)
    assert [c.token_ids for c in first.completions] == [c.token_ids for c in again.completions]
    lm = load_model("smollm2-135m", device="cuda", dtype="float32")
    for done in first.completions:
        ids = torch.tensor([prompt + done.token_ids], device="cuda")
        with torch.no_grad():
            logprobs = torch.log_softmax(lm.model(input_ids=ids).logits[0].float(), -1)
        steps = torch.arange(len(done.token_ids), device="cuda") + len(prompt) - 1
        reference = logprobs[steps, torch.tensor(done.token_ids, device="cuda")].cpu()
        assert torch.allclose(torch.tensor(done.logprobs), reference, atol=0.1)  # bf16 engine


def test_vllm_continues_a_prefix_from_its_cached_blocks(engine):
    """Think@n's two stages on vLLM: a seed's prefix is the start of that seed's full sample,
    and the continuation recomputes at most one partial KV block (16 tokens)."""
    prompt = engine.tokenizer("Question: what is 12 - 7? Think step by step.\nAnswer:")["input_ids"]
    params = SamplingParams(temperature=0.8, max_new_tokens=48, top_logprobs=20)
    seeds = [11, 12, 13, 14]
    full = engine.complete([prompt] * 4, seeds, params)
    first = engine.complete([prompt] * 4, seeds, params, max_tokens=16)
    for whole, prefix in zip(full.completions, first.completions, strict=True):
        assert prefix.token_ids == whole.token_ids[:16]
    more = engine.extend([prompt] * 4, first.completions, seeds, params)
    for prefix, done, prefill in zip(
        first.completions, more.completions, more.prefills, strict=True
    ):
        assert done.token_ids[:16] == prefix.token_ids and len(done.token_ids) <= 48
        if prefix.finish_reason == "length":
            assert 1 <= prefill <= 16


def test_think_at_n_on_vllm_scores_with_the_hf_lens(engine):
    from thinkscope.select import Pool, PrefixSelfCertainty, staged

    lm = load_model("smollm2-135m", device="cuda", dtype="float32")
    prompt = engine.tokenizer("Question: what is 3 + 5?\nAnswer:")["input_ids"]
    params = SamplingParams(temperature=0.8, max_new_tokens=32, top_logprobs=20)
    pool = Pool(lm, [prompt], [[21, 22, 23, 24]], params)
    gen = staged.think_at_n(pool, engine, PrefixSelfCertainty(lm), prefix=8, keep_ratio=0.5)
    assert len(gen.voters[0]) == 2 and all(s > -1e9 for s in gen.scores[0])
    pruned = [c for c in gen.completions[0] if c.finish_reason == "pruned"]
    assert all(len(c.token_ids) == 8 for c in pruned)
    assert gen.tokens()[0] == sum(len(c.token_ids) for c in gen.completions[0])
