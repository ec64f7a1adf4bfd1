"""The lens engine against a plain per-layer, per-token float64 reference on tiny models."""

import pytest
import torch

from thinkscope.generate.sampler import BatchSampler, SamplingParams
from thinkscope.lens import (
    Head,
    divergences_from_states,
    lens_profile,
    sampled_states,
    settle,
    settling_depths_from_states,
    token_divergences,
    token_profile,
)
from thinkscope.metrics import settling_depth
from tiny import FAMILIES, tiny_lm

REFERENCE_FAMILIES = ["llama", "gemma2", "gpt2", "phi"]  # plain, soft-capped, LayerNorm, head bias


def random_ids(n: int, seed: int = 0) -> list[int]:
    return torch.randint(5, 300, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@torch.no_grad()
def reference(lm, ids: list[int], prompt_len: int, k: int = 5) -> dict[str, torch.Tensor]:
    """Obviously correct: the whole sequence through the model, then each token and layer alone."""
    with lm.record_blocks() as states:
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0].double()
    rows = {"jsd": [], "kl": [], "entropy": [], "topk": [], "final": []}
    for t in range(prompt_len, len(ids)):
        lp_final = torch.log_softmax(logits[t - 1], -1)  # the distribution token t was drawn from
        rows["final"].append(lp_final)
        jsd, kl, ent, top = [], [], [], []
        for layer in range(lm.n_layers):
            z = lm.head(states[layer][0, t - 1]).double()
            lq = torch.log_softmax(z, -1)
            p, q = lp_final.exp(), lq.exp()
            log_m = torch.log(0.5 * (p + q))
            jsd.append(0.5 * (p * (lp_final - log_m)).sum() + 0.5 * (q * (lq - log_m)).sum())
            kl.append((p * (lp_final - lq)).sum())
            ent.append(-(q * lq).sum())
            top.append(z.topk(k).indices)
        rows["jsd"].append(torch.stack(jsd))
        rows["kl"].append(torch.stack(kl))
        rows["entropy"].append(torch.stack(ent))
        rows["topk"].append(torch.stack(top))
    return {name: torch.stack(values) for name, values in rows.items()}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_head_matches_lm_head(family):
    lm = tiny_lm(family)
    hidden = torch.randn(7, lm.model.config.hidden_size)
    torch.testing.assert_close(Head(lm)(hidden), lm.head(hidden), atol=1e-5, rtol=0)


def sharpened(lm, scale: float = 40.0):
    """The same tiny model with a scaled unembedding: confident (low-entropy) distributions."""
    with torch.no_grad():
        lm.anatomy.unembed.weight.mul_(scale)
    return lm


@pytest.mark.parametrize("sharp", [False, True], ids=["diffuse", "sharp"])
@pytest.mark.parametrize("family", REFERENCE_FAMILIES)
def test_profile_matches_reference(family, sharp):
    lm = sharpened(tiny_lm(family)) if sharp else tiny_lm(family)
    ids, prompt_len = random_ids(20, seed=1), 8
    ref = reference(lm, ids, prompt_len)
    prof = token_profile(lm, ids, prompt_len, kl=True, topk=5)
    assert prof.jsd.shape == (12, lm.n_layers) and prof.jsd.dtype == torch.float32
    torch.testing.assert_close(prof.jsd.double(), ref["jsd"], atol=1e-5, rtol=0)
    # KL and entropy are unbounded: float32 gives them ~1e-6 relative error
    torch.testing.assert_close(prof.kl.double(), ref["kl"], atol=1e-5, rtol=2e-6)
    torch.testing.assert_close(prof.entropy.double(), ref["entropy"], atol=1e-5, rtol=2e-6)
    assert torch.equal(prof.topk_ids, ref["topk"])
    torch.testing.assert_close(token_divergences(lm, ids, prompt_len), prof.jsd)


@pytest.mark.parametrize("family", REFERENCE_FAMILIES)
def test_last_layer_is_the_models_own_distribution(family):
    lm = sharpened(tiny_lm(family))
    ids, prompt_len = random_ids(16, seed=2), 6
    ref = reference(lm, ids, prompt_len)
    prof = token_profile(lm, ids, prompt_len, kl=True)
    final = ref["final"]
    targets = torch.tensor(ids[prompt_len:])
    assert torch.all(prof.jsd[:, -1] == 0) and torch.all(prof.kl[:, -1] == 0)
    if lm.anatomy.softcap is None:  # soft-capped logits cannot get this confident
        assert prof.final.entropy.min() < 0.69  # confident tokens, where a wrong D_L would show
    torch.testing.assert_close(
        prof.final.token_logprob.double(),
        final.gather(1, targets[:, None]).squeeze(1),
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(
        prof.final.entropy.double(), -(final.exp() * final).sum(-1), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(prof.final.mean_logprob.double(), final.mean(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        prof.final.top_logprobs.double(), final.topk(20).values, atol=1e-5, rtol=0
    )


def test_batching_is_padding_safe():
    lm = tiny_lm("qwen2")
    seqs = [
        (random_ids(9, 3), random_ids(7, 4)),
        (random_ids(3, 5), random_ids(12, 6)),
        (random_ids(5, 7), []),
        (random_ids(1, 8), random_ids(2, 9)),
    ]
    states, targets = sampled_states(lm, [p for p, _ in seqs], [c for _, c in seqs])
    batched = lens_profile(lm, states, targets=targets)
    single = torch.cat([token_divergences(lm, p + c, len(p)) for p, c in seqs])
    assert batched.jsd.shape == (21, lm.n_layers)
    torch.testing.assert_close(batched.jsd, single, atol=1e-5, rtol=0)


def test_block_sizes_do_not_change_results():
    lm = tiny_lm("llama")
    states, targets = sampled_states(lm, [random_ids(4, 10)], [random_ids(30, 11)])
    big = lens_profile(lm, states, targets=targets, kl=True)
    small = lens_profile(lm, states, targets=targets, kl=True, chunk_rows=7)
    torch.testing.assert_close(small.jsd, big.jsd, atol=1e-6, rtol=0)
    torch.testing.assert_close(small.kl, big.kl, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_fast_path_gives_the_full_profiles_depths(family):
    lm = tiny_lm(family, n_layers=6)
    states, targets = sampled_states(lm, [random_ids(5, 12)], [random_ids(40, 13)])
    jsd = lens_profile(lm, states, targets=targets).jsd
    gs = torch.quantile(jsd[:, :-1].flatten(), torch.tensor([0.1, 0.5, 0.9])).tolist()
    fast = settle(lm, states, gs[::-1], targets=targets, chunk_rows=16)
    for column, g in enumerate(gs[::-1]):
        assert torch.equal(fast.depths[:, column], settling_depth(jsd, g))
    assert settle(lm, states, gs[2:]).layer_rows < jsd.numel()  # settled tokens skip layers
    torch.testing.assert_close(
        settling_depths_from_states(lm, states, gs[1]), settling_depth(jsd, gs[1]), atol=0, rtol=0
    )
    torch.testing.assert_close(
        settling_depths_from_states(lm, states, gs[1] / 0.6931472, base=2),
        settling_depth(jsd, gs[1]),
        atol=0,
        rtol=0,
    )


def test_states_captured_during_generation_give_the_scoring_divergences():
    lm = tiny_lm("llama")
    prompt = random_ids(6, 14)
    sampler = BatchSampler(lm, [prompt], [0], SamplingParams(temperature=1.0, max_new_tokens=8))
    captured: list[list[torch.Tensor]] = []
    sampler.run(on_hidden=lambda rows, states: captured.append(states))
    states = [torch.cat([step[layer] for step in captured]) for layer in range(lm.n_layers)]
    tokens = sampler.completions[0].token_ids
    jsd = divergences_from_states(lm, states)
    torch.testing.assert_close(
        jsd, token_divergences(lm, prompt + tokens, len(prompt)), atol=1e-5, rtol=0
    )
    stacked = torch.stack(states)  # [L, N, d] works as well as a list of L tensors
    torch.testing.assert_close(divergences_from_states(lm, stacked), jsd)


def test_an_empty_completion_has_an_empty_profile():
    lm = tiny_lm("llama")
    assert token_divergences(lm, random_ids(5), 5).shape == (0, lm.n_layers)
    states, _ = sampled_states(lm, [random_ids(5)], [[]])
    assert settle(lm, states, [0.1]).depths.shape == (0, 1)


def test_native_kernel_and_eager_torch_agree(monkeypatch):
    from thinkscope.lens import native

    lm = tiny_lm("gemma2")
    states, targets = sampled_states(lm, [random_ids(4, 15)], [random_ids(25, 16)])
    if native.kernel() is None:
        pytest.skip("no C compiler: only the eager path exists here")
    fused = lens_profile(lm, states, targets=targets, kl=True)
    monkeypatch.setattr(native, "kernel", lambda: None)
    plain = lens_profile(lm, states, targets=targets, kl=True)
    for name in ("jsd", "kl", "entropy"):
        torch.testing.assert_close(getattr(fused, name), getattr(plain, name), atol=1e-5, rtol=0)
