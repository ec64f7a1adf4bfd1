"""The one hook layer: named points, capture, stop-after-layer, and guaranteed removal."""

import pytest
import torch

from thinkscope.core.errors import UserError
from thinkscope.models.hooks.points import capture, forward, hook, point, stop_after
from tiny import tiny_lm


def _hook_count(lm) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in lm.model.modules())


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_capture_reads_each_block_output_as_the_model_reports_it(family):
    lm = tiny_lm(family)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    forward(lm, input_ids=ids, output_hidden_states=True)  # transformers adds its own hooks once
    before = _hook_count(lm)
    with capture(lm, [1, 3]) as seen:
        out = forward(lm, input_ids=ids, output_hidden_states=True)
    # hidden_states[l] is block l's output for every block but the last (normed there)
    torch.testing.assert_close(seen[1][0], out.hidden_states[1], rtol=0, atol=0)
    torch.testing.assert_close(seen[3][0], out.hidden_states[3], rtol=0, atol=0)
    assert _hook_count(lm) == before


def test_stop_after_skips_the_blocks_above_and_the_head():
    lm = tiny_lm("llama", n_layers=4)
    before = _hook_count(lm)
    calls = []
    above = hook(point(lm, "blocks.3"), lambda *_: calls.append(3))
    with above, capture(lm, [2]) as seen, stop_after(lm, 2):
        assert forward(lm, input_ids=torch.tensor([[5, 6, 7]])) is None
    assert calls == [] and len(seen[2]) == 1
    assert _hook_count(lm) == before
    assert forward(lm, input_ids=torch.tensor([[5, 6, 7]])).logits.shape[-1] > 0


def test_hooks_are_removed_when_the_pass_fails():
    lm = tiny_lm("llama")
    before = _hook_count(lm)

    def boom(*_):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), hook(point(lm, "blocks.2.mlp"), boom):
        lm.model(input_ids=torch.tensor([[5, 6]]))
    assert _hook_count(lm) == before


def test_points_name_the_models_own_modules_and_refuse_unknown_names():
    lm = tiny_lm("llama", n_layers=4)
    assert point(lm, "blocks.4") is lm.anatomy.layers[3]
    assert point(lm, "blocks.1.attn") is lm.anatomy.attentions[0]
    assert point(lm, "blocks.2.mlp") is lm.anatomy.mlps[1]
    assert point(lm, "model") is lm.model
    for bad in ("blocks.0", "blocks.5", "blocks.1.norm", "layer.1"):
        with pytest.raises(UserError):
            point(lm, bad)
