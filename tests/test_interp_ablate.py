"""Layer and head ablation against hand-made references: deleted blocks, zeroed weights,
per-row means computed in numpy, and unpadded one-by-one runs."""

import copy

import numpy as np
import pytest
import torch

from thinkscope.core.errors import UserError
from thinkscope.interp import ablate_heads, ablate_layers
from thinkscope.models.hooks.interventions import out_projection
from tiny import tiny_lm

IDS = [[5, 9, 14, 30, 7, 21], [11, 40, 8]]


def padded(lm, rows=IDS):
    """Left-padded batch, as the sampler and HF generate pad."""
    width, pad = max(map(len, rows)), lm.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def logits(lm, ids, mask=None):
    with torch.no_grad():
        kwargs = {} if mask is None else {"attention_mask": mask}
        if mask is not None:
            kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
        return lm.model(input_ids=ids, **kwargs).logits


@pytest.fixture(scope="module")
def lm():
    return tiny_lm("llama", n_layers=4)


def test_zero_block_equals_deleting_the_block(lm):
    ids = torch.tensor([IDS[0]])
    reference = copy.deepcopy(lm.model)
    del reference.model.layers[1]  # layer 2 = block index 1
    reference.config.num_hidden_layers = 3
    want = reference(input_ids=ids, use_cache=False).logits
    with ablate_layers(lm, [2]):
        got = logits(lm, ids)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(logits(lm, ids), want, atol=1e-3)  # the block mattered


def test_zero_mlp_equals_zeroed_down_projection(lm):
    ids = torch.tensor([IDS[0]])
    reference = copy.deepcopy(lm.model)
    with torch.no_grad():
        reference.model.layers[2].mlp.down_proj.weight.zero_()
    with ablate_layers(lm, [3], component="mlp"):
        got = logits(lm, ids)
    assert torch.allclose(got, reference(input_ids=ids).logits, atol=1e-5)


def test_mean_mlp_uses_each_rows_real_positions(lm):
    """Padded batch == each row alone, whose MLP output is replaced by its numpy mean."""
    ids, mask = padded(lm)
    with ablate_layers(lm, [2], method="mean", component="mlp"):
        batch = logits(lm, ids, mask)
    for row, seq in enumerate(IDS):
        one = torch.tensor([seq])
        outs = []
        hook = lm.anatomy.mlps[1].register_forward_hook(lambda _m, _i, o, outs=outs: outs.append(o))
        logits(lm, one)
        hook.remove()
        mean = torch.from_numpy(outs[0][0].double().numpy().mean(axis=0)).float()
        reference = copy.deepcopy(lm.model)
        reference.model.layers[1].mlp.forward = lambda x, mean=mean: mean.expand_as(x)
        want = reference(input_ids=one).logits[0]
        assert torch.allclose(batch[row, -len(seq) :], want, atol=1e-5)


def test_mean_block_with_given_means(lm):
    ids = torch.tensor([IDS[0]])
    mean = torch.randn(64)
    ins, outs = [], []
    block = lm.anatomy.layers[0]
    h1 = block.register_forward_pre_hook(lambda _m, a, k: ins.append(a[0]), with_kwargs=True)
    with ablate_layers(lm, [1], method="mean", means={1: mean}):
        h2 = block.register_forward_hook(lambda _m, _i, o: outs.append(o))
        logits(lm, ids)
        h2.remove()
    h1.remove()
    out = outs[0][0] if isinstance(outs[0], tuple) else outs[0]
    assert torch.allclose(out, ins[0] + mean, atol=1e-6)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_zero_heads_equal_zeroed_projection_columns(family):
    lm = tiny_lm(family, n_layers=3)
    ids = torch.tensor([IDS[0]])
    reference = copy.deepcopy(lm.model)
    proj = out_projection(type(lm).wrap(reference, lm.tokenizer).anatomy.attentions[1])
    size = 64 // 4
    with torch.no_grad():
        weight = proj.weight if family == "llama" else proj.weight.T  # gpt2 Conv1D is [in, out]
        for head in (1, 3):
            weight[:, head * size : (head + 1) * size] = 0
    with ablate_heads(lm, {2: [1, 3]}):
        got = logits(lm, ids)
    assert torch.allclose(got, reference(input_ids=ids).logits, atol=1e-5)
    assert not torch.allclose(got, logits(lm, ids), atol=1e-4)


def test_mean_heads_padded_equals_one_by_one(lm):
    ids, mask = padded(lm)
    with ablate_heads(lm, {3: [0]}, method="mean"):
        batch = logits(lm, ids, mask)
        for row, seq in enumerate(IDS):
            alone = logits(lm, torch.tensor([seq]))[0]
            assert torch.allclose(batch[row, -len(seq) :], alone, atol=1e-5)
    with ablate_heads(lm, {3: [0]}, method="zero"):
        assert not torch.allclose(logits(lm, ids, mask), batch, atol=1e-4)


def test_exit_restores_the_model_exactly(lm):
    ids = torch.tensor([IDS[0]])
    before = logits(lm, ids)
    state = {k: v.clone() for k, v in lm.model.state_dict().items()}
    with ablate_layers(lm, [1, 4], method="mean", component="attn"), ablate_heads(lm, {2: [0]}):
        assert not torch.equal(logits(lm, ids), before)
    assert torch.equal(logits(lm, ids), before)
    assert all(torch.equal(v, state[k]) for k, v in lm.model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in lm.model.modules())


@pytest.mark.parametrize(
    "call",
    [
        lambda lm: ablate_layers(lm, [0]),
        lambda lm: ablate_layers(lm, [5]),
        lambda lm: ablate_layers(lm, [1], method="median"),
        lambda lm: ablate_layers(lm, [1], component="norm"),
        lambda lm: ablate_heads(lm, {1: [4]}),
        lambda lm: ablate_layers(lm, [1], method="mean", means={1: np.full(64, np.nan)}),
    ],
)
def test_bad_arguments_are_user_errors(lm, call):
    with pytest.raises(UserError):
        call(lm)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in lm.model.modules())
