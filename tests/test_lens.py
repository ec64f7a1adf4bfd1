"""The lens engine against a plain per-layer, per-token float64 reference on tiny models."""

import pytest
import torch

from thinkscope.core.errors import UserError
from thinkscope.generation.sampler import BatchSampler, SamplingParams
from thinkscope.lens import (
    Head,
    divergences_from_states,
    kernel,
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
    # fp32 log p = z - lse: z - max, the log-sum-exp and the difference each round at <= u S
    # (S: the row's largest |log p|, up to ~80 here), and the head's logits themselves at a few
    # u S more; entropy and mean are averages of such terms. Measured: <= 4.4 u S.
    bound = 16 * 2**-24 * final.abs().amax(-1)
    pairs = [
        (prof.final.token_logprob, final.gather(1, targets[:, None]).squeeze(1)),
        (prof.final.entropy, -(final.exp() * final).sum(-1)),
        (prof.final.mean_logprob, final.mean(-1)),
        (prof.final.top_logprobs, final.topk(20).values),
    ]
    for got, want in pairs:
        err = (got.double() - want).abs()
        assert torch.all(err.reshape(len(bound), -1) <= bound[:, None]), (err, bound)


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


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_compiled_kernel_matches_reference(family, monkeypatch):
    """The Inductor-compiled reduction (forced on: tiny blocks stay eager by default)."""
    monkeypatch.setenv("THINKSCOPE_COMPILE", "1")
    lm = sharpened(tiny_lm(family))
    ids, prompt_len = random_ids(20, seed=15), 6
    ref = reference(lm, ids, prompt_len)
    prof = token_profile(lm, ids, prompt_len, kl=True)
    assert not kernel._FAILED, kernel._FAILED  # it really ran compiled
    torch.testing.assert_close(prof.jsd.double(), ref["jsd"], atol=1e-5, rtol=0)
    torch.testing.assert_close(prof.kl.double(), ref["kl"], atol=1e-5, rtol=2e-6)
    torch.testing.assert_close(prof.entropy.double(), ref["entropy"], atol=1e-5, rtol=2e-6)
    states, _ = sampled_states(lm, [ids[:prompt_len]], [ids[prompt_len:]])
    g = float(ref["jsd"][:, :-1].median())
    fast = settle(lm, states, [g], layer_group=2)
    assert torch.equal(fast.depths[:, 0], settling_depth(prof.jsd, g))


def test_a_failing_compiler_falls_back_to_eager(monkeypatch):
    lm = tiny_lm("llama")
    states, targets = sampled_states(lm, [random_ids(4, 17)], [random_ids(12, 18)])
    eager = lens_profile(lm, states, targets=targets, kl=True)

    def broken(*_args):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setenv("THINKSCOPE_COMPILE", "1")
    monkeypatch.setattr(kernel, "_compiled", lambda fn: broken)
    monkeypatch.setattr(kernel, "_FAILED", [])
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        fallback = lens_profile(lm, states, targets=targets, kl=True)
    assert kernel.backend() == "eager"
    torch.testing.assert_close(fallback.jsd, eager.jsd, atol=0, rtol=0)
    torch.testing.assert_close(fallback.kl, eager.kl, atol=0, rtol=0)


@torch.no_grad()
def masked_reference(lm, states) -> dict[str, torch.Tensor]:
    """float64 JSD, KL and entropies with 0 log 0 = 0 (``xlogy``), for logits with ``-inf``."""
    lp = torch.log_softmax(lm.head(states[-1]).double(), -1)
    p = lp.exp()
    jsd, kl, ent = [], [], []
    for layer in range(lm.n_layers):
        lq = torch.log_softmax(lm.head(states[layer]).double(), -1)
        q = lq.exp()
        m = 0.5 * (p + q)
        kl_pm = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum(-1)
        kl_qm = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum(-1)
        jsd.append(0.5 * (kl_pm + kl_qm))
        kl.append((torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1))
        ent.append(-torch.xlogy(q, q).sum(-1))
    return {name: torch.stack(v, 1) for name, v in (("jsd", jsd), ("kl", kl), ("entropy", ent))}


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["eager", "compiled"])
def test_masked_vocabulary_gives_finite_divergences(compiled, monkeypatch):
    """A ``-inf`` logit (here: a head bias masking 40 tokens) has q = 0: 0 log 0 = 0, no NaN."""
    monkeypatch.setenv("THINKSCOPE_COMPILE", compiled)
    lm = sharpened(tiny_lm("phi"), 10.0)
    with torch.no_grad():
        lm.anatomy.unembed.bias[torch.arange(5, 300, 7)] = float("-inf")
    states, targets = sampled_states(lm, [random_ids(5, 19)], [random_ids(16, 20)])
    assert torch.isinf(lm.head(states[0])).any()
    ref = masked_reference(lm, states)
    prof = lens_profile(lm, states, targets=targets, kl=True)
    assert torch.isfinite(prof.jsd).all() and torch.isfinite(prof.final.entropy).all()
    torch.testing.assert_close(prof.jsd.double(), ref["jsd"], atol=1e-5, rtol=0)
    torch.testing.assert_close(prof.kl.double(), ref["kl"], atol=1e-5, rtol=2e-6)
    torch.testing.assert_close(prof.entropy.double(), ref["entropy"], atol=1e-5, rtol=2e-6)
    g = float(ref["jsd"][:, :-1].median())
    assert torch.equal(settle(lm, states, [g]).depths[:, 0], settling_depth(prof.jsd, g))


def test_hugging_face_hidden_states_are_refused():
    lm = tiny_lm("llama")
    ids = torch.tensor([random_ids(9, 21)])
    with torch.no_grad():
        hidden = lm.model(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(hidden) == lm.n_layers + 1
    states = [h[0] for h in hidden]
    with pytest.raises(UserError, match="output_hidden_states.*record_blocks"):
        lens_profile(lm, states)
    with pytest.raises(UserError, match="output_hidden_states"):
        settle(lm, states, [0.1])


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["eager", "compiled"])
def test_kernel_row_sums_for_each_need_match_float64(compiled, monkeypatch):
    """Each ``need`` of the fused reduction against plain float64 sums, on peaked and flat
    rows of a 4096-token vocabulary with masked (``-inf``) entries and zeros in ``p``."""
    monkeypatch.setenv("THINKSCOPE_COMPILE", compiled)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(24, 4096, generator=gen) * torch.linspace(0.5, 12, 24)[:, None]
    z[:, ::97] = float("-inf")
    final = torch.randn(6, 4096, generator=gen) * 6
    final[:, ::97] = final[:, 5::89] = float("-inf")  # p = 0 wherever q = 0, and elsewhere
    p = torch.softmax(final, -1)
    rows = torch.arange(6).repeat(4)
    lq = torch.log_softmax(z.double(), -1)
    q, pr = lq.exp(), p.double()[rows]
    neg_hq, cross = torch.xlogy(q, q).sum(-1), (pr * torch.where(pr > 0, lq, 0.0)).sum(-1)
    gap = neg_hq - torch.xlogy(q + pr, q + pr).sum(-1)
    assert torch.isfinite(cross).all()
    for need in kernel.NEEDS:
        sums = kernel.fused(z, p, rows, need=need)
        assert sums.gap.dtype == torch.float64
        torch.testing.assert_close(sums.gap, gap, atol=1e-6, rtol=0)
        if need == "jsd":
            assert sums.neg_hq is None and sums.cross is None
            continue
        torch.testing.assert_close(sums.neg_hq, neg_hq, atol=1e-6, rtol=1e-7)
        if need == "kl":
            torch.testing.assert_close(sums.cross, cross, atol=1e-5, rtol=1e-6)
        else:
            assert sums.cross is None
    assert not kernel._FAILED, kernel._FAILED
    with pytest.raises(ValueError, match="need"):
        kernel.fused(z, p, rows, need="everything")


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["eager", "compiled"])
def test_kernel_shift_guesses_do_not_change_the_sums(compiled, monkeypatch):
    """Any per-row guess of the log-normaliser gives the float64 sums: good ones, ones 30 nats
    off either way, and ones so far off that the first pass overflows or vanishes (those rows
    are redone with their maximum)."""
    monkeypatch.setenv("THINKSCOPE_COMPILE", compiled)
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(12, 4096, generator=gen) * torch.linspace(0.5, 10, 12)[:, None] + 20
    p = torch.softmax(torch.randn(3, 4096, generator=gen) * 5, -1)
    rows = torch.arange(3).repeat(4)
    lq = torch.log_softmax(z.double(), -1)
    q, pr = lq.exp(), p.double()[rows]
    neg_hq = torch.xlogy(q, q).sum(-1)
    gap = neg_hq - torch.xlogy(q + pr, q + pr).sum(-1)
    cross = (pr * lq).sum(-1)
    lse = torch.logsumexp(z, -1)
    misses = torch.tensor([0.0, 30.0, -30.0, 200.0, -200.0, 95.0]).repeat(2)
    for shift in (lse, lse + misses, torch.full((12,), -1e4)):
        sums = kernel.fused(z, p, rows, need="kl", shift=shift.float())
        torch.testing.assert_close(sums.gap, gap, atol=1e-6, rtol=0)
        torch.testing.assert_close(sums.neg_hq, neg_hq, atol=1e-6, rtol=1e-7)
        torch.testing.assert_close(sums.cross, cross, atol=1e-6, rtol=1e-7)


@pytest.mark.parametrize("vocab", [49152, 49156, 49157])
def test_folded_sums_match_float64_for_any_vocabulary(vocab):
    """Compiled, eight, four or one column slices (as V allows) give the float64 row sums
    (Inductor's own fp32 sums are ~1e-6 off at this size)."""
    x = torch.randn(5, vocab, generator=torch.Generator().manual_seed(vocab)) * 2
    sums = torch.compile(lambda x: kernel.folded_sums(lambda xs: (xs.exp(),), x)[0])(x)
    assert sums.dtype == torch.float64
    torch.testing.assert_close(sums, x.double().exp().sum(-1), atol=0, rtol=1e-7)


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["eager", "compiled"])
def test_final_terms_match_float64(compiled, monkeypatch):
    """The final layer's p, log-normaliser, sum p log p and sum z against float64, with a
    masked entry and a row of very different scale."""
    monkeypatch.setenv("THINKSCOPE_COMPILE", compiled)
    z = torch.randn(4, 4096, generator=torch.Generator().manual_seed(9)) * 6 + 40
    z[1] *= 0.01
    z[2, 7] = float("-inf")
    fin = kernel.final(z)
    lp = torch.log_softmax(z.double(), -1)
    torch.testing.assert_close(fin.p.double(), lp.exp(), atol=1e-9, rtol=3e-7)
    torch.testing.assert_close(fin.lse.double(), torch.logsumexp(z.double(), -1), atol=0, rtol=1e-7)
    torch.testing.assert_close(
        fin.neg_h, torch.xlogy(lp.exp(), lp.exp()).sum(-1), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        fin.total[[0, 1, 3]], z.double().sum(-1)[[0, 1, 3]], atol=0, rtol=1e-7
    )
    assert fin.total[2] == float("-inf")


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["eager", "compiled"])
def test_layer_entropies_are_asked_for_and_do_not_change_the_rest(compiled, monkeypatch):
    """The default profile skips the layer entropies (one fp64 sum less per row) and gives the
    JSD, final statistics and top-K of the full one."""
    monkeypatch.setenv("THINKSCOPE_COMPILE", compiled)
    lm = sharpened(tiny_lm("llama"))
    states, targets = sampled_states(lm, [random_ids(6, 22)], [random_ids(14, 23)])
    default = lens_profile(lm, states, targets=targets, topk=3)
    full = lens_profile(lm, states, targets=targets, topk=3, entropy=True)
    assert default.entropy is None and default.kl is None and full.kl is None
    torch.testing.assert_close(default.jsd, full.jsd, atol=1e-6, rtol=0)
    assert torch.equal(default.topk_ids, full.topk_ids)
    for name in ("entropy", "mean_logprob", "top_logprobs", "token_logprob"):
        torch.testing.assert_close(getattr(default.final, name), getattr(full.final, name))
    torch.testing.assert_close(full.entropy, lens_profile(lm, states, kl=True).entropy)
    assert full.entropy[:, :-1].std() > 0.01  # real, varying layer entropies
