"""The lens on CUDA (marked ``gpu``; skipped without CUDA): every path against the float64
reference of ``test_lens.py``, in fp32 and in bf16 (fp32 reductions), and the GPU plan."""

import copy

import pytest
import torch

from test_lens import masked_reference, random_ids, sharpened
from thinkscope.lens import kernel, lens_profile, sampled_states, settle
from thinkscope.lens.blocks import memory_budget, plan_blocks
from thinkscope.metrics import settling_depth
from thinkscope.models import load_model
from tiny import tiny_lm

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def cuda_lm(family: str, dtype: torch.dtype):
    lm = sharpened(tiny_lm(family), 10.0)
    lm.model.to("cuda", dtype)
    return lm


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["eager", "triton"])
@pytest.mark.parametrize(
    ("dtype", "atol"), [(torch.float32, 1e-5), (torch.bfloat16, 5e-3)], ids=["fp32", "bf16"]
)
@pytest.mark.parametrize("family", ["llama", "gemma2", "phi"])
def test_cuda_lens_matches_the_float64_reference(family, dtype, atol, compiled, monkeypatch):
    monkeypatch.setenv("THINKSCOPE_COMPILE", compiled)
    lm = cuda_lm(family, dtype)
    states, targets = sampled_states(lm, [random_ids(6, 30)], [random_ids(24, 31)])
    assert states[0].is_cuda and states[0].dtype == dtype
    exact = copy.deepcopy(lm)  # float64 head on the same (bf16) block outputs
    exact.model.double()
    ref = masked_reference(exact, [s.double() for s in states])
    prof = lens_profile(lm, states, targets=targets, kl=True)
    assert prof.jsd.is_cuda and prof.jsd.dtype == torch.float32
    assert not kernel._FAILED, kernel._FAILED
    torch.testing.assert_close(prof.jsd.double(), ref["jsd"], atol=atol, rtol=0)
    torch.testing.assert_close(prof.entropy.double(), ref["entropy"], atol=atol, rtol=1e-3)
    g = float(ref["jsd"][:, :-1].median())
    assert torch.equal(settle(lm, states, [g]).depths[:, 0], settling_depth(prof.jsd, g))


def test_cuda_plan_batches_layers_and_uses_free_memory():
    plan = plan_blocks(30, 49152, memory_budget(torch.device("cuda")), gpu=True)
    assert plan.layer_group > 1 and plan.profile_positions > 17  # larger than the CPU plan


def test_device_map_auto_puts_inputs_on_the_gpu(tiny_model_dir):
    lm = load_model(str(tiny_model_dir), device_map="auto")
    assert lm.device.type == "cuda" and lm.dtype == torch.bfloat16
    states, _ = sampled_states(lm, [random_ids(4, 32)], [random_ids(8, 33)])
    assert torch.isfinite(lens_profile(lm, states).jsd).all()
