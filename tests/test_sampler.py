import torch

from thinkscope.generation import BatchSampler, SamplingParams
from tiny import tiny_lm

PROMPTS = [[5, 17, 42], [7, 8, 9, 10, 11, 12, 13], [100]]


def _reference_greedy(lm, prompt, steps):
    out = lm.model.generate(
        torch.tensor([prompt]),
        max_new_tokens=steps,
        do_sample=False,
        pad_token_id=lm.tokenizer.pad_token_id,
        eos_token_id=None,
    )
    return out[0, len(prompt) :].tolist()


def test_greedy_batch_matches_one_prompt_at_a_time_generate():
    lm = tiny_lm("llama")
    sampler = BatchSampler(lm, PROMPTS, [0, 1, 2], SamplingParams(temperature=0, max_new_tokens=12))
    sampler.run()
    for prompt, done in zip(PROMPTS, sampler.completions, strict=True):
        expected = _reference_greedy(lm, prompt, 12)
        eos = [i for i, t in enumerate(expected) if t in lm.eos_token_ids]
        expected = expected[: eos[0] + 1] if eos else expected
        assert done.token_ids == expected  # left padding never leaks into a row


def test_logprobs_are_the_models_own_and_topk_is_recorded():
    lm = tiny_lm("qwen2")
    params = SamplingParams(temperature=0.9, max_new_tokens=10, top_logprobs=5)
    sampler = BatchSampler(lm, PROMPTS, [3, 4, 5], params)
    sampler.run()
    for prompt, done in zip(PROMPTS, sampler.completions, strict=True):
        ids = torch.tensor([prompt + done.token_ids])
        logprobs = torch.log_softmax(lm.model(input_ids=ids).logits[0].float(), -1)
        for t, (token, lp) in enumerate(zip(done.token_ids, done.logprobs, strict=True)):
            assert abs(logprobs[len(prompt) - 1 + t, token].item() - lp) < 1e-4
            top = logprobs[len(prompt) - 1 + t].topk(5)
            assert done.top_ids[t] == top.indices.tolist()
        assert len(done.top_logprobs) == len(done.token_ids)


def test_a_sample_does_not_depend_on_its_batch():
    lm = tiny_lm("llama")
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=16)
    crowd = BatchSampler(lm, PROMPTS * 3, list(range(9)), params)
    crowd.run()
    alone = BatchSampler(lm, [PROMPTS[1]], [4], params)
    alone.run()
    assert crowd.completions[4].token_ids == alone.completions[0].token_ids
    assert crowd.completions[4].token_ids != crowd.completions[1].token_ids  # seeds matter


def test_stop_strings_and_length_set_the_finish_reason():
    lm = tiny_lm("llama")
    free = BatchSampler(lm, [PROMPTS[0]], [0], SamplingParams(temperature=1.0, max_new_tokens=20))
    free.run()
    assert free.completions[0].finish_reason in ("length", "stop")
    text = lm.tokenizer.decode(free.completions[0].token_ids[:3])
    stopper = BatchSampler(
        lm, [PROMPTS[0]], [0], SamplingParams(temperature=1.0, max_new_tokens=20, stop=(text[-2:],))
    )
    stopper.run()
    done = stopper.completions[0]
    assert done.finish_reason == "stop" and len(done.token_ids) <= 3


def test_run_continues_from_the_cache_and_keep_prunes():
    lm = tiny_lm("llama")
    params = SamplingParams(temperature=1.0, max_new_tokens=12)
    whole = BatchSampler(lm, PROMPTS, [1, 2, 3], params)
    whole.run()
    staged = BatchSampler(lm, PROMPTS, [1, 2, 3], params)
    staged.run(max_new_tokens=4)
    staged.keep([0, 2])
    staged.run()
    assert staged.completions[1].finish_reason == "pruned"
    assert len(staged.completions[1].token_ids) <= 4
    for row in (0, 2):
        assert staged.completions[row].token_ids == whole.completions[row].token_ids
    assert staged.generated_tokens < whole.generated_tokens
