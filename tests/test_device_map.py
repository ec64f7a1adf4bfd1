"""A model spread over devices with accelerate (``--device-map``): the lens, scoring and interp
collection give what the same model gives on one device.

On CPU the split is accelerate's disk offload: the first blocks stay in memory, the last
blocks, the final norm and the head live in an offload folder and are loaded by accelerate's
hooks when used (their parameters are on ``meta`` meanwhile), as a model too big for its GPUs
has its last modules offloaded to CPU. Both models run the same fp32 operations on the same
CPU with bit-identical weights (offloading copies them), so the results are equal exactly.
The ``gpu`` tests split a model between CUDA and the CPU, where each layer's block outputs
are on its own device and the lens gathers them to the head's.
"""

import pytest
import torch
from accelerate import dispatch_model
from transformers import AutoModelForCausalLM

from test_lens import random_ids
from thinkscope.interp.activations import collect
from thinkscope.lens import sampled_states, settle, token_profile
from thinkscope.metrics.forward_pass import measure
from thinkscope.metrics.registry import parse_metrics
from thinkscope.models import LM, load_model
from tiny import tiny_model, tiny_tokenizer

IN_MEMORY = ["model.embed_tokens", "model.rotary_emb", "model.layers.0", "model.layers.1"]
OFFLOADED = ["model.layers.2", "model.layers.3", "model.norm", "lm_head"]
METRICS = "dtr,confidence,mean-settling-depth,topk-agreement,jsd-profile"
TEXTS = ["What is 3 + 5? The answer is 8.", "Janet has 16 eggs.", "Think step by step."]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny llama with a scaled head (confident distributions: JSDs up to ~0.6 nats)."""
    path = tmp_path_factory.mktemp("tiny-sharp")
    model = tiny_model("llama")
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def whole(model_dir):
    return load_model(str(model_dir), dtype="float32")


@pytest.fixture(scope="module")
def offloaded(model_dir, tmp_path_factory):
    device_map = {**dict.fromkeys(IN_MEMORY, "cpu"), **dict.fromkeys(OFFLOADED, "disk")}
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        device_map=device_map,
        offload_folder=str(tmp_path_factory.mktemp("offload")),
        dtype=torch.float32,
    )
    lm = LM.wrap(model, tiny_tokenizer())
    assert lm.anatomy.unembed.weight.is_meta and lm.anatomy.layers[3].mlp.up_proj.weight.is_meta
    assert hasattr(lm.anatomy.unembed, "_hf_hook")  # accelerate's hooks load them when used
    return lm


def test_the_lens_on_an_offloaded_model_equals_the_whole_model(whole, offloaded):
    ids, prompt_len = random_ids(24, seed=3), 6
    mine = token_profile(offloaded, ids, prompt_len, kl=True, topk=5)
    ref = token_profile(whole, ids, prompt_len, kl=True, topk=5)
    assert ref.jsd.max() > 0.1  # the comparison is not between two near-zero arrays
    for name in ("jsd", "kl", "entropy", "topk_ids"):
        assert torch.equal(getattr(mine, name), getattr(ref, name)), name
    assert torch.equal(mine.final.token_logprob, ref.final.token_logprob)
    assert offloaded.anatomy.unembed.weight.is_meta  # offloaded again after the lens


def test_settling_on_an_offloaded_model_equals_the_whole_model(whole, offloaded):
    prompts = [random_ids(5, 4), random_ids(7, 5)]
    completions = [random_ids(9, 6), random_ids(4, 7)]
    mine, ref = (
        settle(lm, sampled_states(lm, prompts, completions)[0], [0.05, 0.2])
        for lm in (offloaded, whole)
    )
    assert len(set(ref.depths.flatten().tolist())) > 1  # depths differ between tokens
    assert torch.equal(mine.depths, ref.depths)
    assert torch.equal(mine.final.entropy, ref.final.entropy)


def test_scores_on_an_offloaded_model_equal_the_whole_models(whole, offloaded):
    prompts, completions = (
        [random_ids(5, 8), random_ids(3, 9)],
        [random_ids(12, 10), random_ids(6, 11)],
    )
    specs = parse_metrics(METRICS)
    mine, ref = (measure(lm, prompts, completions, specs) for lm in (offloaded, whole))
    assert [sorted(r) for r in mine] == [sorted(r) for r in ref]
    for trace_mine, trace_ref in zip(mine, ref, strict=True):
        for column, result in trace_ref.items():
            assert result.value == trace_mine[column].value, column


def test_interp_collect_on_an_offloaded_model_equals_the_whole_models(whole, offloaded):
    mine = collect(offloaded, TEXTS, positions="mean", covariance=True)
    ref = collect(whole, TEXTS, positions="mean", covariance=True)
    assert (mine.mean == ref.mean).all() and (mine.comoment == ref.comoment).all()


def split(lm: LM, device_map: dict) -> LM:
    """``lm``'s model placed by ``device_map`` (modules not named: on CUDA), each module
    executing where its weights are."""
    model = AutoModelForCausalLM.from_config(lm.model.config)
    model.load_state_dict(lm.model.state_dict())
    placed = {name: device_map.get(name, 0) for name in (*IN_MEMORY, *OFFLOADED)}
    return LM.wrap(dispatch_model(model.eval(), placed, main_device="cpu"), lm.tokenizer)


SPLITS = {
    "to-cpu": dict.fromkeys(OFFLOADED, "cpu"),  # the head's device is not the embedding's
    "to-cuda": dict.fromkeys(IN_MEMORY, "cpu"),
    "head-apart": {"lm_head": "cpu"},  # the final norm on CUDA, the head on the CPU
}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("device_map", list(SPLITS.values()), ids=list(SPLITS))
def test_a_model_split_between_cuda_and_cpu_scores_as_the_whole_model(whole, device_map):
    lm = split(whole, device_map)
    devices = {p.device.type for p in lm.model.parameters()}
    assert devices == {"cuda", "cpu"} and not any(p.is_meta for p in lm.model.parameters())
    prompts = [random_ids(5, 8), random_ids(3, 9)]
    completions = [random_ids(12, 10), random_ids(6, 11)]
    specs = parse_metrics(METRICS)
    mine, ref = (measure(m, prompts, completions, specs) for m in (lm, whole))
    for trace_mine, trace_ref in zip(mine, ref, strict=True):
        for column, result in trace_ref.items():  # CUDA and CPU kernels round differently
            assert trace_mine[column].value == pytest.approx(result.value, abs=1e-4), column
    ids, prompt_len = random_ids(24, seed=3), 6
    profile = token_profile(lm, ids, prompt_len)
    assert profile.jsd.device == lm.anatomy.unembed.weight.device
    expected = token_profile(whole, ids, prompt_len).jsd
    torch.testing.assert_close(profile.jsd.cpu(), expected, atol=1e-4, rtol=0)
    mine = collect(lm, TEXTS, positions="mean")
    assert abs(mine.mean - collect(whole, TEXTS, positions="mean").mean).max() < 1e-4
