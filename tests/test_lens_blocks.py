"""Device-aware block sizing and layer batching, checked on CPU with given memory budgets."""

import math

import pytest
import torch

from thinkscope.lens import lens_profile, sampled_states, settle
from thinkscope.lens.blocks import CPU_BUDGET, GPU_SHARE, memory_budget, plan_blocks
from thinkscope.metrics import settling_depth
from tiny import tiny_lm

L, V = 30, 49152  # the bundled model


def test_cpu_plan_is_100_mb_of_logits_per_block():
    plan = plan_blocks(L, V, CPU_BUDGET, gpu=False)
    assert plan.rows == CPU_BUDGET // (4 * V) == 533
    assert plan.profile_positions == 533 // L == 17
    assert plan.layer_group == 1 and plan.settle_positions == 533


@pytest.mark.parametrize("budget", [2 << 30, 40 << 30])
def test_gpu_plan_fills_the_budget_with_few_products(budget):
    plan = plan_blocks(L, V, budget, gpu=True)
    row = 4 * V
    assert plan.rows == budget // row
    # a block's logits fit the budget, and the budget is used: no room for another position
    assert plan.profile_positions * L * row <= max(budget, L * row)
    assert (plan.profile_positions + 1) * L * row > budget
    assert plan.layer_group * plan.settle_positions * row <= max(budget, plan.layer_group * row)
    assert math.ceil((L - 1) / plan.layer_group) <= 4  # the fast path: at most 4 products
    assert plan.layer_group > 1


def test_a_budget_below_one_row_still_makes_progress():
    plan = plan_blocks(L, V, 1000, gpu=True)
    assert plan.rows == 1 and plan.profile_positions == 1 and plan.settle_positions == 1
    assert plan.layer_group == 1  # never more layers per product than rows


def test_chunk_rows_override_the_budget():
    plan = plan_blocks(L, V, CPU_BUDGET, gpu=False, chunk_rows=90)
    assert (plan.rows, plan.profile_positions, plan.settle_positions) == (90, 3, 90)


def test_gpu_budget_is_a_share_of_the_free_memory(monkeypatch):
    free, total = 10 << 30, 80 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    assert memory_budget(torch.device("cuda")) == int(free * GPU_SHARE)
    assert memory_budget(torch.device("cpu")) == CPU_BUDGET


@pytest.mark.parametrize("group", [2, 3, 7])
def test_layer_groups_give_the_same_depths(group):
    """Several layers per product (the GPU plan) settle every position where one layer does."""
    lm = tiny_lm("llama", n_layers=8)
    gen = torch.Generator().manual_seed(3)
    prompt, tokens = torch.randint(5, 300, (2, 30), generator=gen).tolist()
    states, targets = sampled_states(lm, [prompt[:5]], [tokens])
    jsd = lens_profile(lm, states, targets=targets).jsd
    gs = torch.quantile(jsd[:, :-1].flatten(), torch.tensor([0.2, 0.5, 0.8])).tolist()
    one = settle(lm, states, gs, targets=targets, layer_group=1)
    many = settle(lm, states, gs, targets=targets, layer_group=group, chunk_rows=group * 7)
    for column, g in enumerate(gs):
        assert torch.equal(many.depths[:, column], settling_depth(jsd, g))
    assert torch.equal(many.depths, one.depths)
    torch.testing.assert_close(many.final.entropy, one.final.entropy)
    torch.testing.assert_close(many.final.token_logprob, one.final.token_logprob)
    assert one.layer_rows <= many.layer_rows <= len(jsd) * lm.n_layers  # whole groups computed
