"""The sampler on every family's cache (key/value, sliding window, conv, SSM, linear attention):
left padding, rows leaving the batch, prompts prefilled once for several samples, and ``keep``.

The models are made lively: a tiny random model mostly echoes its last input token, so its
greedy tokens would hardly depend on the cache; scaling the blocks' weights makes them do.
"""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from thinkscope.core.errors import UserError
from thinkscope.generation import BatchSampler, SamplingParams
from thinkscope.models import LM
from tiny import FAMILIES, HYBRID_FAMILIES, tiny_lm, tiny_tokenizer

PROMPTS = [[5, 17, 42, 9], [7, 8, 9, 10, 11, 12, 13], [100], [61, 3, 77]]
STEPS = 8
#: the hybrid families, and llama for the key/value cache every other family has too
CACHES = sorted({"llama", *HYBRID_FAMILIES})


def lively(family: str) -> LM:
    """``tiny_lm(family)`` with every weight matrix but the embedding scaled by 4."""
    lm = tiny_lm(family)
    embedding = lm.model.get_input_embeddings().weight
    with torch.no_grad():
        for param in lm.model.parameters():
            if param.dim() >= 2 and param is not embedding:
                param.mul_(4.0)
    return lm


def generate(lm: LM, prompt: list[int]) -> list[int]:
    """transformers' own greedy decoding of one prompt (no padding, no EOS), new tokens only."""
    out = lm.model.generate(
        torch.tensor([prompt]),
        max_new_tokens=STEPS,
        do_sample=False,
        pad_token_id=lm.tokenizer.pad_token_id,
        eos_token_id=None,
    )
    return out[0, len(prompt) :].tolist()


def until(tokens: list[int], stops: set[int]) -> list[int]:
    """``tokens`` up to and including the first of ``stops``."""
    ends = [i for i, t in enumerate(tokens) if t in stops]
    return tokens[: ends[0] + 1] if ends else tokens


def early_stop_token(outputs: list[list[int]]) -> int:
    """A token that ends one row early while a later row runs on: after that row leaves the
    batch, the rows behind it move up one place."""
    for i, tokens in enumerate(outputs):
        for t in tokens[1:-1]:
            if any(t not in later for later in outputs[i + 1 :]):
                return t
    raise AssertionError(f"no token ends a row early: {outputs}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_greedy_equals_generate_with_rows_finishing_early(family, record_property):
    record_property("capability", "greedy = generate")
    lm = lively(family)
    free = [generate(lm, p) for p in PROMPTS]
    stop = early_stop_token(free)
    lm.model.generation_config.eos_token_id = [lm.tokenizer.eos_token_id, stop]
    expected = [until(tokens, lm.eos_token_ids) for tokens in free]
    sampler = BatchSampler(
        lm, PROMPTS, [0, 1, 2, 3], SamplingParams(temperature=0, max_new_tokens=STEPS)
    )
    sampler.run()
    assert [c.token_ids for c in sampler.completions] == expected
    reasons = [c.finish_reason for c in sampler.completions]
    assert reasons == ["stop" if e[-1] in lm.eos_token_ids else "length" for e in expected]
    assert reasons.count("stop") < len(PROMPTS)


@pytest.mark.parametrize("family", CACHES)
def test_samples_of_a_shared_prompt_equal_one_prompt_at_a_time(family, record_property):
    record_property("capability", "prefix sharing")
    lm = lively(family)
    prompts = [PROMPTS[1], PROMPTS[0], PROMPTS[1]]
    seeds = [11, 12, 13]
    params = SamplingParams(temperature=1.0, max_new_tokens=STEPS)
    crowd = BatchSampler(lm, prompts, seeds, params)
    crowd.run()
    assert crowd.prefill_tokens == len(PROMPTS[0]) + len(PROMPTS[1])  # each prefilled once
    for prompt, seed, done in zip(prompts, seeds, crowd.completions, strict=True):
        alone = BatchSampler(lm, [prompt], [seed], params)
        alone.run()
        assert done.token_ids == alone.completions[0].token_ids
        # float32 logits of a padded batch vs. one prompt: rounding only
        torch.testing.assert_close(done.logprobs, alone.completions[0].logprobs, atol=1e-4, rtol=0)
    assert crowd.completions[0].token_ids != crowd.completions[2].token_ids  # seeds matter


@pytest.mark.parametrize("family", CACHES)
def test_keep_then_run_continues_as_an_uninterrupted_run(family, record_property):
    record_property("capability", "keep + continue")
    lm = lively(family)
    prompts = [*PROMPTS, PROMPTS[1]]
    seeds = [21, 22, 23, 24, 25]
    params = SamplingParams(temperature=1.0, max_new_tokens=STEPS)
    whole = BatchSampler(lm, prompts, seeds, params)
    whole.run()
    staged = BatchSampler(lm, prompts, seeds, params)
    staged.run(max_new_tokens=4)
    staged.keep([0, 2, 4])  # rows 2 and 4 move up in the batch
    staged.run()
    for row, (done, reference) in enumerate(
        zip(staged.completions, whole.completions, strict=True)
    ):
        if row in (0, 2, 4):
            assert done.token_ids == reference.token_ids
        else:
            assert done.finish_reason == "pruned" and done.token_ids == reference.token_ids[:4]


def test_a_model_with_its_own_cache_is_refused_in_one_line():
    tok = tiny_tokenizer()
    config = AutoConfig.for_model(
        "rwkv", vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, attention_hidden_size=64
    )
    lm = LM.wrap(AutoModelForCausalLM.from_config(config).eval(), tok, name="tiny-rwkv")
    with pytest.raises(UserError, match="'rwkv' cannot generate on the HF backend"):
        BatchSampler(lm, PROMPTS, [0, 1, 2, 3], SamplingParams(temperature=0))
