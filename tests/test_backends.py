"""Backends: selection, the vLLM request/result mapping (on fakes of vLLM's objects), and the
sampler's hazards (stop strings, last-position prefill states)."""

from dataclasses import dataclass

import pytest
import torch

from thinkscope.core.errors import UserError
from thinkscope.decoding import DecodingConfig
from thinkscope.generation import BatchSampler, Completion, SamplingParams
from thinkscope.generation.backends import choose_backend
from thinkscope.generation.backends.hf import HFBackend
from thinkscope.generation.backends.vllm import (
    Generated,
    build_requests,
    collect,
    continuation_seed,
    merge,
    to_completion,
)
from tiny import tiny_lm


# -- backend selection ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "requested, installed, cuda, expected",
    [
        ("auto", True, True, "vllm"),
        ("auto", True, False, "hf"),
        ("auto", False, True, "hf"),
        ("hf", True, True, "hf"),
        ("vllm", True, True, "vllm"),
    ],
)
def test_auto_picks_vllm_only_with_vllm_and_cuda(requested, installed, cuda, expected):
    backend, why = choose_backend(requested, installed=installed, cuda=cuda)
    assert backend == expected and why


def test_auto_says_why_it_fell_back():
    assert "not installed" in choose_backend("auto", installed=False, cuda=True)[1]
    assert "CUDA" in choose_backend("auto", installed=True, cuda=False)[1]


def test_auto_with_a_loaded_model_is_hf_and_an_explicit_choice_still_wins():
    assert choose_backend("auto", installed=True, cuda=True, model_loaded=True) == (
        "hf",
        "auto: a loaded model was passed",
    )
    assert choose_backend("vllm", installed=True, cuda=True, model_loaded=True)[0] == "vllm"


@pytest.mark.parametrize("installed, cuda", [(False, True), (True, False)])
def test_vllm_without_vllm_or_cuda_is_a_user_error(installed, cuda):
    with pytest.raises(UserError, match="--backend vllm"):
        choose_backend("vllm", installed=installed, cuda=cuda)
    with pytest.raises(UserError, match="--backend must be"):
        choose_backend("tpu", installed=installed, cuda=cuda)


# -- vLLM requests and results, on fakes of vLLM's output objects -----------------------------
@dataclass
class FakeLogprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int
    decoded_token: str | None = None


@dataclass
class FakeCompletion:  # vllm.outputs.CompletionOutput
    token_ids: list
    logprobs: list
    finish_reason: str
    index: int = 0


@dataclass
class FakeRequest:  # vllm.outputs.RequestOutput
    prompt_token_ids: list
    outputs: list
    num_cached_tokens: int = 0


def test_requests_carry_one_seed_per_sample_and_the_models_knobs():
    params = SamplingParams(
        temperature=0.6,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        max_new_tokens=32,
        stop=("Question:",),
        top_logprobs=5,
    )
    inputs, sampling = build_requests([[1, 2], [1, 2], [3]], [11, 12, 13], params, eos=[0, 7])
    assert inputs == [
        {"prompt_token_ids": [1, 2]},
        {"prompt_token_ids": [1, 2]},
        {"prompt_token_ids": [3]},
    ]
    assert [s["seed"] for s in sampling] == [11, 12, 13]
    first = sampling[0]
    assert (first["n"], first["temperature"], first["top_p"], first["top_k"], first["min_p"]) == (
        1,
        0.6,
        0.9,
        40,
        0.05,
    )
    assert first["max_tokens"] == 32 and first["stop"] == ["Question:"]
    assert first["stop_token_ids"] == [0, 7] and first["logprobs"] == 5
    assert first["include_stop_str_in_output"]
    _, limited = build_requests([[1]], [5], params, eos=[0], max_tokens=[4])
    assert limited[0]["max_tokens"] == 4


def test_correctness_first_knobs_go_to_thinkscopes_vllm_processor():
    batch = pytest.importorskip("thinkscope.decoding.batch")
    decoding = DecodingConfig(temperature=0.7, prob_threshold=0.02, top_k=50)
    _, (request,) = build_requests([[1]], [9], SamplingParams(decoding=decoding), eos=[0])
    assert (request["temperature"], request["top_p"], request["top_k"], request["min_p"]) == (
        1.0,
        1.0,
        0,
        0.0,
    )  # vLLM's own knobs are no-ops: the processor applies the whole rule
    assert batch.config_from_extra_args(request["extra_args"]) == decoding
    assert request["seed"] == 9
    _, (plain,) = build_requests([[1]], [9], SamplingParams(temperature=0.7), eos=[0])
    assert "extra_args" not in plain and plain["temperature"] == 0.7
    with pytest.raises(UserError, match="per-step logs"):
        build_requests([[1]], [0], SamplingParams(log_steps=True), eos=[0])


def _step(entries: dict[int, tuple[float, int]]) -> dict:
    return {token: FakeLogprob(lp, rank) for token, (lp, rank) in entries.items()}


def test_results_become_the_samplers_columns():
    # step 1: sampled token 9 is outside the top 2 (rank 5): vLLM adds it as a k+1-th entry
    # step 2: sampled token 4 is the top token; entries arrive out of rank order
    output = FakeCompletion(
        token_ids=[9, 4],
        logprobs=[
            _step({3: (-0.5, 1), 9: (-3.0, 5), 6: (-1.0, 2)}),
            _step({8: (-1.2, 2), 4: (-0.4, 1)}),
        ],
        finish_reason="length",
    )
    done = to_completion(output, top_logprobs=2)
    assert done.token_ids == [9, 4] and done.logprobs == [-3.0, -0.4]
    assert done.top_ids == [[3, 6], [4, 8]]
    assert done.top_logprobs == [[-0.5, -1.0], [-0.4, -1.2]]
    assert done.finish_reason == "length"
    bare = to_completion(output, top_logprobs=0)
    assert bare.top_ids == [] and bare.logprobs == [-3.0, -0.4]


def test_collect_counts_uncached_prefill_and_generated_tokens():
    sample = FakeCompletion([5, 0], [_step({5: (-1.0, 1)}), _step({0: (-0.1, 1)})], "stop")
    requests = [
        FakeRequest([1, 2, 3], [sample]),
        FakeRequest([1, 2, 3], [sample], num_cached_tokens=2),
    ]
    out = collect(requests, top_logprobs=0)
    assert out.prefill_tokens == 3 + 1 and out.generated_tokens == 4
    assert [c.finish_reason for c in out.completions] == ["stop", "stop"]
    with pytest.raises(ValueError, match="log-prob steps"):
        to_completion(FakeCompletion([5, 6], [_step({5: (-1.0, 1)})], "stop"), 0)


def test_a_continued_prefix_is_one_sample():
    prefix = Completion([1, 2], [-0.1, -0.2], [[1], [2]], [[-0.1], [-0.2]], "length")
    rest = Completion([3], [-0.3], [[3]], [[-0.3]], "stop")
    whole = merge(prefix, rest)
    assert whole.token_ids == [1, 2, 3] and whole.logprobs == [-0.1, -0.2, -0.3]
    assert whole.top_ids == [[1], [2], [3]] and whole.finish_reason == "stop"
    assert prefix.token_ids == [1, 2]  # the prefix itself is untouched
    seeds = {continuation_seed(s) for s in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert Generated().completions == []


def test_hf_backend_is_the_sampler():
    lm = tiny_lm("llama")
    params = SamplingParams(temperature=0.9, max_new_tokens=6)
    via_backend = HFBackend(lm).complete([[5, 17, 42], [100]], [3, 4], params)
    direct = BatchSampler(lm, [[5, 17, 42], [100]], [3, 4], params)
    direct.run()
    assert [c.token_ids for c in via_backend.completions] == [
        c.token_ids for c in direct.completions
    ]
    assert via_backend.generated_tokens == direct.generated_tokens > 0


# -- sampler hazards ----------------------------------------------------------------------------
def _first_stop(lm, ids: list[int], stop: str) -> int | None:
    """Reference: the fewest leading tokens whose decoded text holds ``stop``."""
    for t in range(1, len(ids) + 1):
        if stop in lm.tokenizer.decode(ids[:t]):
            return t
    return None


def test_stop_strings_stop_exactly_where_the_decoded_text_first_holds_them():
    lm = tiny_lm("llama")
    free = BatchSampler(
        lm, [[5, 17, 42]] * 12, list(range(12)), SamplingParams(temperature=1.0, max_new_tokens=24)
    )
    free.run()
    texts = [lm.tokenizer.decode(c.token_ids) for c in free.completions]
    # stop strings that really occur mid-way (readable ones and U+FFFD from split bytes)
    stops = sorted({t[len(t) // 2 : len(t) // 2 + 2] for t in texts if len(t) > 6})[:4]
    checked = 0
    for stop in stops:
        sampler = BatchSampler(
            lm,
            [[5, 17, 42]] * 12,
            list(range(12)),
            SamplingParams(temperature=1.0, max_new_tokens=24, stop=(stop,)),
        )
        sampler.run()
        for whole, cut in zip(free.completions, sampler.completions, strict=True):
            expected = _first_stop(lm, whole.token_ids, stop)
            if expected is None:
                assert cut.token_ids == whole.token_ids
            else:
                assert cut.token_ids == whole.token_ids[:expected] and cut.finish_reason == "stop"
                checked += 1
    assert checked >= 4


def test_hidden_states_of_the_first_step_are_the_last_prompt_positions():
    lm = tiny_lm("qwen2")
    prompts = [[5, 17, 42, 9], [100, 7], [5, 17, 42, 9]]
    seen = []
    sampler = BatchSampler(lm, prompts, [0, 1, 2], SamplingParams(max_new_tokens=1))
    sampler.run(on_hidden=lambda rows, states: seen.append((rows, states)))
    rows, states = seen[0]
    assert rows == [0, 1, 2] and len(states) == lm.n_layers
    for row, prompt in enumerate(prompts):
        with lm.record_blocks() as alone:
            lm.model(input_ids=torch.tensor([prompt]))
        for layer in range(lm.n_layers):
            assert states[layer].shape == (3, 64)
            torch.testing.assert_close(
                states[layer][row], alone[layer][0, -1], atol=1e-5, rtol=1e-5
            )


def test_a_run_records_the_backend_it_used_and_why(tiny_model_dir, tmp_path, capsys):
    from thinkscope.generation.pipeline import GenerateConfig, generate_run

    config = GenerateConfig(
        model=str(tiny_model_dir),
        task="demo-arith",
        questions=2,
        n=2,
        max_new_tokens=3,
        batch_size=4,
    )
    run = generate_run(config, tmp_path / "run", show_progress=True)
    assert run.config["backend"] == "hf"  # stored resolved: a resume cannot switch backends
    line = "backend: hf (auto: vLLM is not installed)"
    assert line in (run.path / "log.txt").read_text() and line in capsys.readouterr().err
    with pytest.raises(UserError, match="--backend vllm"):
        generate_run(config.model_copy(update={"backend": "vllm"}), tmp_path / "other")
    assert not (tmp_path / "other").exists()  # refused before anything was written
