"""Steering, directional ablation and patching against hand-written hooks and plain runs,
in one forward pass, in HF ``generate`` and in thinkscope's KV-cached sampler."""

import pytest
import torch

from test_interp_ablate import IDS, logits, padded
from thinkscope.generation.sampler import BatchSampler, SamplingParams
from thinkscope.interp import ablate_direction, patch, steer
from thinkscope.interp.activations import record
from tiny import tiny_lm


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama", n_layers=4)


def vector(seed=1, scale=3.0):
    return scale * torch.randn(64, generator=torch.Generator().manual_seed(seed))


def by_hand(lm, layer, v):
    """The reference: a plain forward hook that adds v to block ``layer``'s output."""

    def hook(_m, _i, out):
        return (out[0] + v, *out[1:]) if isinstance(out, tuple) else out + v

    return lm.anatomy.layers[layer - 1].register_forward_hook(hook)


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3"])
def test_steer_equals_a_hand_written_hook(family):
    lm = tiny_lm(family, n_layers=3)
    ids = torch.tensor([IDS[0]])
    v = vector()
    hook = by_hand(lm, 2, 0.5 * v)
    want = logits(lm, ids)
    hook.remove()
    with steer(lm, {2: v}, alpha=0.5):
        got = logits(lm, ids)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, logits(lm, ids), atol=1e-3)


def test_alpha_zero_is_bit_identical_and_exit_restores(lm):
    ids, mask = padded(lm)
    before = logits(lm, ids, mask)
    with steer(lm, {1: vector(), 3: vector(2)}, alpha=0.0):
        assert torch.equal(logits(lm, ids, mask), before)
    handle = steer(lm, {2: vector()}, alpha=2.0)
    assert not torch.equal(logits(lm, ids, mask), before)
    handle.remove()
    assert torch.equal(logits(lm, ids, mask), before)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in lm.model.modules())


def test_start_leaves_earlier_positions_alone(lm):
    ids = torch.tensor([IDS[0]])
    before = logits(lm, ids)
    with steer(lm, {2: vector()}, alpha=1.0, start=3):
        got = logits(lm, ids)
    assert torch.equal(got[:, :3], before[:, :3])
    assert not torch.allclose(got[:, 3:], before[:, 3:], atol=1e-3)


def test_padded_batch_equals_one_by_one(lm):
    ids, mask = padded(lm)
    with steer(lm, {2: vector()}, alpha=1.0, start=1):
        batch = logits(lm, ids, mask)
        for row, seq in enumerate(IDS):
            alone = logits(lm, torch.tensor([seq]))[0]
            assert torch.allclose(batch[row, -len(seq) :], alone, atol=1e-5)


def test_directional_ablation_leaves_zero_component(lm):
    u = vector(5)
    unit = u / u.norm()
    with ablate_direction(lm, u, layers=[2, 3]), lm.record_blocks() as states:
        logits(lm, torch.tensor([IDS[0]]))
    for layer, h in enumerate(states, start=1):
        component = (h.double() @ unit.double()).abs().max()
        if layer in (2, 3):
            assert component < 1e-5 * h.abs().max()
        else:
            assert component > 1e-2


def test_patch_every_position_gives_the_source_logits(lm):
    clean, corrupt = [IDS[0]], [[6, 9, 14, 31, 7, 20]]
    texts = [lm.tokenizer.decode(seq) for seq in (clean[0], corrupt[0])]
    assert [lm.tokenizer(t)["input_ids"] for t in texts] == [clean[0], corrupt[0]]
    source = record(lm, texts[:1], layers=[2])
    with patch(lm, source):
        got = logits(lm, torch.tensor(corrupt))
    assert torch.allclose(got, logits(lm, torch.tensor(clean)), atol=1e-5)
    last = {2: source[2][:, -1:]}
    with patch(lm, last, positions=[5]):
        one = logits(lm, torch.tensor(corrupt))
    hook = lm.anatomy.layers[1].register_forward_hook(
        lambda _m, _i, out: (
            torch.cat([out[:, :5], source[2][:, 5:]], 1)
            if not isinstance(out, tuple)
            else (torch.cat([out[0][:, :5], source[2][:, 5:]], 1), *out[1:])
        )
    )
    want = logits(lm, torch.tensor(corrupt))
    hook.remove()
    assert torch.allclose(one, want, atol=1e-6)


def test_steer_is_active_in_hf_generate(lm):
    ids = torch.tensor([IDS[0]])
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    v = vector(3, scale=20.0)
    hook = by_hand(lm, 2, v)
    want = lm.model.generate(ids, **kwargs)
    hook.remove()
    plain = lm.model.generate(ids, **kwargs)
    with steer(lm, {2: v}):
        got = lm.model.generate(ids, **kwargs)
    assert torch.equal(got, want) and not torch.equal(got, plain)


def sample(lm, prompts, n=8):
    """Seeded sampling at temperature 1 (greedy decoding of a tiny random model repeats one
    token); each prompt's seed is its index in IDS, so batched and alone runs draw alike."""
    params = SamplingParams(temperature=1.0, max_new_tokens=n)
    sampler = BatchSampler(lm, prompts, [IDS.index(p) for p in prompts], params)
    sampler.run()
    return [c.token_ids for c in sampler.completions]


def test_steer_in_the_cached_sampler_is_padding_aware(lm):
    """Batched (left-padded, KV-cached) steered decoding == each prompt decoded alone, and
    == a hand-written hook when steering starts at position 0."""
    v = vector(4, scale=4.0)
    with steer(lm, {3: v}, start=2):
        batched = sample(lm, IDS)
        alone = [sample(lm, [seq])[0] for seq in IDS]
    assert batched == alone
    assert batched != sample(lm, IDS)
    assert len({tuple(c) for c in batched}) > 1 and len(set(batched[0])) > 1  # not degenerate
    with steer(lm, {3: v}):
        got = sample(lm, IDS)
    hook = by_hand(lm, 3, v)
    want = [sample(lm, [seq])[0] for seq in IDS]
    hook.remove()
    assert got == want
