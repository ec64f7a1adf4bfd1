"""The vLLM backend on a real GPU (marked ``gpu``; skipped without CUDA and vLLM)."""

import importlib.util

import pytest
import torch

from thinkscope.generate import SamplingParams
from thinkscope.generate.pipeline import GenerateConfig, generate_unit
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
    from thinkscope.backends.vllm import VLLMBackend

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
