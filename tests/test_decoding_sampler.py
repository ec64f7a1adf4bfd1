"""The sampler draws through DecodingConfig, and its per-step logs match a plain recomputation."""

import torch

from thinkscope.decoding import DecodingConfig
from thinkscope.generation import BatchSampler, SamplingParams
from thinkscope.generation.pipeline import GenerateConfig, generate_run
from tiny import tiny_lm

PROMPTS = [[5, 17, 42], [7, 8, 9, 10, 11, 12, 13], [100]]


def _peaked(family: str):
    """A tiny model whose next-token pmax spreads over 0.3..0.9 (random ones are near-uniform)."""
    lm = tiny_lm(family)
    with torch.no_grad():
        lm.model.lm_head.weight.mul_(30)
    return lm


def _run(lm, params, seeds=(3, 4, 5)):
    sampler = BatchSampler(lm, PROMPTS, list(seeds), params)
    sampler.run()
    return sampler.completions


def test_step_logs_match_a_full_forward_recomputation():
    lm = _peaked("qwen2")
    decoding = DecodingConfig(temperature=0.8, min_p=0.05, greedy_threshold=0.45)
    params = SamplingParams(decoding=decoding, max_new_tokens=10, log_steps=True)
    assert params.temperature == 0.8 and params.min_p == 0.05  # the flat fields mirror it
    greedy_steps, completions = 0, _run(lm, params)
    for prompt, done in zip(PROMPTS, completions, strict=True):
        ids = torch.tensor([prompt + done.token_ids])
        logits = lm.model(input_ids=ids).logits[0].double()
        assert len(done.step_pmax) == len(done.step_rank) == len(done.token_ids)
        for t, token in enumerate(done.token_ids):
            z = logits[len(prompt) - 1 + t]
            probs = torch.softmax(z, -1)
            p = torch.softmax(z / 0.8, -1)
            assert abs(done.step_pmax[t] - p.max().item()) < 1e-5
            assert done.step_rank[t] == 1 + int((probs > probs[token]).sum())
            assert abs(done.step_prob[t] - probs[token].item()) < 1e-5
            k = int((p >= 0.05 * p.max()).sum())
            k = 1 if p.max() < 0.45 else k
            assert done.step_kept[t] == k and done.step_rank[t] <= k
            greedy_steps += k == 1
    assert 0 < greedy_steps < sum(len(d.token_ids) for d in completions)  # both branches
    assert max(max(d.step_rank) for d in completions) > 1  # ranks really vary


def test_greedy_threshold_one_samples_the_greedy_tokens():
    lm = tiny_lm("llama")
    greedy = _run(lm, SamplingParams(temperature=0, max_new_tokens=8))
    forced = _run(
        lm,
        SamplingParams(
            decoding=DecodingConfig(temperature=1.0, greedy_threshold=1.0),
            max_new_tokens=8,
            log_steps=True,
        ),
    )
    plain = _run(lm, SamplingParams(temperature=1.0, max_new_tokens=8))
    assert [d.token_ids for d in forced] == [d.token_ids for d in greedy]
    assert [d.token_ids for d in plain] != [d.token_ids for d in greedy]  # the knob did it
    assert all(set(d.step_kept) == {1} and set(d.step_rank) == {1} for d in forced)


def test_plain_temperature_sampling_is_unchanged_by_the_decoding_path():
    """The default params and an explicit DecodingConfig with the same T draw the same tokens."""
    lm = tiny_lm("llama")
    flat = _run(lm, SamplingParams(temperature=0.9, top_k=40, max_new_tokens=8))
    rule = _run(
        lm, SamplingParams(decoding=DecodingConfig(temperature=0.9, top_k=40), max_new_tokens=8)
    )
    assert [d.token_ids for d in flat] == [d.token_ids for d in rule]


def test_generate_records_knobs_in_config_and_step_columns(tiny_model_dir, tmp_path):
    config = GenerateConfig.parse(
        model=str(tiny_model_dir),
        task="gym:basic_arithmetic?min_terms=2&max_terms=2",
        questions=2,
        n=2,
        max_new_tokens=5,
        prompt_style="fewshot",
        batch_size=4,
        dynamic_top_k=[1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
        edt_var=(0.8, 1.0, 1.0),
        log_steps=True,
    )
    run = generate_run(config, tmp_path / "run", show_progress=False)
    assert run.config["edt_var"] == [0.8, 1.0, 1.0] and run.config["log_steps"] is True
    frame = run.traces()
    for column in ("step_pmax", "step_rank", "step_prob", "step_kept"):
        assert (frame[column].map(len) == frame["n_tokens"]).all(), column
    kept = [k for ks in frame["step_kept"] for k in ks]
    assert min(kept) >= 1 and max(kept) <= 5


def test_the_processor_plugs_into_transformers_generate():
    """HF sampling through DecodingConfig(temperature=0).processor() is greedy decoding."""
    from transformers import LogitsProcessorList

    lm = _peaked("llama")
    ids = torch.tensor([PROMPTS[1]])
    common = dict(max_new_tokens=6, pad_token_id=lm.tokenizer.pad_token_id, eos_token_id=None)
    greedy = lm.model.generate(ids, do_sample=False, **common)
    torch.manual_seed(0)
    rule = LogitsProcessorList([DecodingConfig(temperature=0).processor()])
    sampled = lm.model.generate(
        ids, do_sample=True, top_k=0, top_p=1.0, temperature=1.0, logits_processor=rule, **common
    )
    torch.manual_seed(0)
    free = lm.model.generate(ids, do_sample=True, top_k=0, top_p=1.0, temperature=1.0, **common)
    assert torch.equal(sampled, greedy) and not torch.equal(free, greedy)
