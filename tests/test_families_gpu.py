"""Hybrid, state-space and mixture-of-experts families on CUDA (marked ``gpu``; skipped
without CUDA): the lens against the float64 reference in fp32 and bf16, and greedy decoding
against transformers' own ``generate`` on the same device."""

import copy

import pytest
import torch

from test_lens import masked_reference, random_ids, sharpened
from thinkscope.generation import BatchSampler, SamplingParams
from thinkscope.lens import lens_profile, sampled_states
from tiny import HYBRID_FAMILIES, tiny_lm

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
PROMPTS = [[5, 17, 42], [7, 8, 9, 10, 11, 12, 13], [100, 3]]


@pytest.mark.parametrize(
    ("dtype", "atol"), [(torch.float32, 1e-5), (torch.bfloat16, 5e-3)], ids=["fp32", "bf16"]
)
@pytest.mark.parametrize("family", sorted(HYBRID_FAMILIES))
def test_lens_on_cuda(family, dtype, atol):
    """The lens against the float64 reference, on CUDA."""
    lm = sharpened(tiny_lm(family), 10.0)
    lm.model.to("cuda", dtype)
    states, targets = sampled_states(lm, [random_ids(6, 30)], [random_ids(24, 31)])
    assert states[0].is_cuda and states[0].dtype == dtype
    exact = copy.deepcopy(lm)  # float64 head on the same block outputs
    exact.model.double()
    ref = masked_reference(exact, [s.double() for s in states])
    prof = lens_profile(lm, states, targets=targets, kl=True)
    torch.testing.assert_close(prof.jsd.double(), ref["jsd"], atol=atol, rtol=0)


@pytest.mark.parametrize("family", sorted(HYBRID_FAMILIES))
def test_greedy_on_cuda(family):
    """A greedy batch equals transformers' ``generate`` one prompt at a time, on CUDA."""
    lm = tiny_lm(family)
    lm.model.to("cuda")
    sampler = BatchSampler(lm, PROMPTS, [0, 1, 2], SamplingParams(temperature=0, max_new_tokens=10))
    sampler.run()
    for prompt, done in zip(PROMPTS, sampler.completions, strict=True):
        out = lm.model.generate(
            torch.tensor([prompt], device="cuda"),
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=lm.tokenizer.pad_token_id,
            eos_token_id=None,
        )
        expected = out[0, len(prompt) :].tolist()
        eos = [i for i, t in enumerate(expected) if t in lm.eos_token_ids]
        assert done.token_ids == (expected[: eos[0] + 1] if eos else expected)
