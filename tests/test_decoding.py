"""decode_step against a plain float64 loop reference of every knob, and its edge cases."""

import math

import numpy as np
import pytest
import torch

from thinkscope.core.errors import UserError
from thinkscope.decoding import DecodingConfig, decode_step


def reference(z32: np.ndarray, c: DecodingConfig) -> tuple[list[bool], np.ndarray, int]:
    """One row, written out from the issue's formulas: (kept mask, scaled logits, k)."""
    z = z32.astype(np.float64)
    vocab = len(z)

    def softmax(x):
        top = max(x)
        e = [math.exp(v - top) for v in x]
        total = sum(e)
        return [v / total for v in e]

    def ent(p):
        return -sum(q * math.log(q) for q in p if q > 0)

    if c.edt_var is not None:
        n, theta, t0 = c.edt_var
        temp = t0 * n ** (theta / ent(softmax(z)))
    else:
        temp = c.temperature
    with np.errstate(divide="ignore", over="ignore"):
        scaled = (z32 / np.float32(temp)).astype(np.float64)  # in the logits' dtype
    greedy = temp == 0 or bool(np.isinf(scaled).any())  # T so small that z / T overflows
    scaled = z if greedy else scaled
    p = softmax(list(scaled))
    pmax = max(p)
    ks = [vocab]
    conf_bin = min(9, math.floor(10 * pmax))
    if greedy:
        ks.append(1)
    if c.top_k:
        ks.append(c.top_k)
    if c.dynamic_top_k is not None:
        ks.append(c.dynamic_top_k[9 - conf_bin])
    if c.prob_threshold is not None:
        ks.append(sum(q >= c.prob_threshold for q in p))
    if c.min_p:
        ks.append(sum(q >= c.min_p * pmax for q in p))
    if c.top_p is not None and c.top_p < 1:
        total, count = 0.0, 0
        for q in sorted(p, reverse=True):
            total += q
            count += total <= c.top_p
        ks.append(count + 1)
    if c.hewitt_epsilon is not None:
        eps = c.hewitt_epsilon
        cutoff = min(eps, math.sqrt(eps) * math.exp(-ent(p)))
        ks.append(sum(q >= cutoff for q in p))
    if c.greedy_threshold is not None and pmax < c.greedy_threshold:
        ks.append(1)
    if c.confidence_bin_only is not None and conf_bin + 1 != c.confidence_bin_only:
        ks.append(1)
    if c.cal_acc is not None:
        a, b, thr = c.cal_acc
        ks.append(sum(10**a * q**b >= thr for q in p))
    k = max(1, min(ks))
    kth = sorted(scaled, reverse=True)[k - 1]
    return [v >= kth for v in scaled], scaled, k


CONFIGS = [
    dict(temperature=0.7),
    dict(temperature=0),
    dict(top_k=5),
    dict(top_p=0.9, temperature=1.3),
    dict(min_p=0.1),
    dict(greedy_threshold=0.3),
    dict(prob_threshold=0.02),
    dict(dynamic_top_k=[1, 1, 2, 2, 3, 3, 4, 5, 6, 8]),
    dict(edt_var=[0.8, 1.0, 1.0]),
    dict(edt_var=[2.0, 0.5, 0.7], top_p=0.95),
    dict(hewitt_epsilon=0.0009),
    dict(confidence_bin_only=3),
    dict(cal_acc=[0.1, 0.6, 0.25]),
    dict(temperature=0.8, top_k=20, min_p=0.05, greedy_threshold=0.4),
    dict(prob_threshold=0.01, hewitt_epsilon=0.02, cal_acc=[-0.2, 0.8, 0.05], top_p=0.8),
]


@pytest.mark.parametrize("shape", [(1, 7), (6, 64), (3, 3000)])
@pytest.mark.parametrize("peak", [0.5, 3.0, 12.0])
@pytest.mark.parametrize("knobs", CONFIGS, ids=lambda k: ",".join(k))
def test_decode_step_matches_the_plain_reference(shape, peak, knobs):
    config = DecodingConfig(**knobs)
    gen = torch.Generator().manual_seed(hash((shape, peak)) % 2**31)
    logits = torch.randn(shape, generator=gen) * peak
    logits[:, 0] += peak  # a clear favourite, so pmax spreads over the confidence bins
    step = decode_step(logits, config)
    for row in range(shape[0]):
        mask, scaled, k = reference(logits[row].numpy(), config)
        kept = torch.isfinite(step.scores[row])
        assert kept.tolist() == mask
        assert int(step.kept[row]) == sum(mask) >= k
        assert sum(mask) == k or len(set(scaled)) < len(scaled)  # more only through ties
        np.testing.assert_allclose(
            step.scores[row][kept].double(), scaled[mask], rtol=1e-6, atol=1e-6
        )
    processed = config.processor()(torch.zeros(shape[0], 1, dtype=torch.long), logits.clone())
    assert torch.equal(processed, step.scores)


def test_the_knobs_really_cut_on_these_inputs():
    """The parametrized cases above would pass vacuously if no knob ever removed a token."""
    logits = torch.randn(64, 500, generator=torch.Generator().manual_seed(1)) * 3
    for knobs in CONFIGS[2:]:
        if list(knobs) == ["edt_var"]:
            continue  # EDT only scales; test_edt_is_not_clamped_to_t0_for_n_below_one
        kept = decode_step(logits, DecodingConfig(**knobs)).kept
        assert (kept < 500).any() and (kept > 1).any(), knobs
        if "greedy_threshold" in knobs:  # rows on both sides of the threshold; below it, greedy
            t = knobs.get("temperature", 1.0)
            below = (logits.double() / t).softmax(-1).max(-1).values < knobs["greedy_threshold"]
            assert 0 < int(below.sum()) < len(below) and (kept[below] == 1).all(), knobs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_all_knobs_unset_leaves_logits_untouched_bit_for_bit(dtype):
    logits = (torch.randn(4, 50) * 20).to(dtype)
    logits[1, 3] = -math.inf
    out = DecodingConfig().processor()(torch.zeros(4, 1, dtype=torch.long), logits.clone())
    assert out.dtype == dtype and torch.equal(out, logits)
    assert DecodingConfig(top_k=0, top_p=1.0, min_p=0.0, temperature=1.0).identity


def test_temperature_zero_keeps_the_argmax_with_its_raw_logit():
    logits = torch.randn(5, 40) * 2
    step = decode_step(logits, DecodingConfig(temperature=0))
    assert step.kept.tolist() == [1] * 5
    assert torch.equal(step.scores.argmax(-1), logits.argmax(-1))
    assert torch.equal(step.scores.amax(-1), logits.amax(-1))
    torch.testing.assert_close(step.pmax, torch.softmax(logits.double(), -1).amax(-1))


def test_greedy_threshold_zero_is_off_and_one_is_always_greedy():
    logits = torch.randn(8, 30) * 2
    base = decode_step(logits, DecodingConfig(temperature=0.9))
    off = decode_step(logits, DecodingConfig(temperature=0.9, greedy_threshold=0.0))
    assert torch.equal(off.scores, base.scores) and (off.kept == 30).all()
    on = decode_step(logits, DecodingConfig(temperature=0.9, greedy_threshold=1.0))
    assert on.kept.tolist() == [1] * 8
    assert torch.equal(on.scores.argmax(-1), logits.argmax(-1))
    torch.testing.assert_close(on.scores.amax(-1), logits.amax(-1) / 0.9)


def test_ties_at_the_cut_are_all_kept():
    logits = torch.tensor([[3.0, 2.0, 2.0, 2.0, 1.0, 0.0], [1.0, 5.0, 5.0, 0.0, 0.0, 0.0]])
    top2 = decode_step(logits, DecodingConfig(top_k=2))
    assert torch.isfinite(top2.scores).tolist() == [
        [True, True, True, True, False, False],
        [False, True, True, False, False, False],
    ]
    assert top2.kept.tolist() == [4, 2]
    greedy = decode_step(logits, DecodingConfig(temperature=0))
    assert greedy.kept.tolist() == [1, 2]  # a tie for the top keeps both


def test_edt_is_not_clamped_to_t0_for_n_below_one():
    logits = torch.randn(6, 80) * 2
    step = decode_step(logits, DecodingConfig(edt_var=[0.5, 1.0, 1.2]))
    h = -torch.special.xlogy(*(2 * [torch.softmax(logits.double(), -1)])).sum(-1)
    torch.testing.assert_close(step.temperature, 1.2 * 0.5 ** (1.0 / h))
    assert (step.temperature < 1.2).all()  # the seed's clamp would give exactly T0
    peaked = torch.tensor([[0.0, -200.0, -200.0]])  # H = 0 in float64: T = 0, greedy
    assert decode_step(peaked, DecodingConfig(edt_var=[0.5, 1.0, 1.0])).kept.item() == 1
    wide = decode_step(peaked, DecodingConfig(edt_var=[2.0, 1.0, 1.0]))  # T = inf: uniform
    assert wide.kept.item() == 3 and not wide.scores.isnan().any()


@pytest.mark.parametrize(
    "knobs",
    [
        dict(dynamic_top_k=[1, 2, 3]),
        dict(dynamic_top_k=[0] * 10),
        dict(confidence_bin_only=0),
        dict(confidence_bin_only=11),
        dict(edt_var=[0.0, 1.0, 1.0]),
        dict(edt_var=[-1.0, 1.0, 1.0]),
        dict(edt_var=[1.0, 1.0]),
        dict(cal_acc=[0.1, -0.5, 0.3]),
        dict(greedy_threshold=1.5),
        dict(top_p=0.0),
        dict(temperature=math.nan),
    ],
)
def test_bad_values_are_rejected(knobs):
    with pytest.raises(ValueError):
        DecodingConfig(**knobs)
    from thinkscope.generation.pipeline import GenerateConfig

    name = next(iter(knobs))
    if name not in ("temperature", "top_p"):  # GenerateConfig keeps its own defaults for those
        with pytest.raises(UserError, match=f"^--{name.replace('_', '-')}: "):
            GenerateConfig.parse(**knobs)
