"""REV metrics against plain references: eager attention probabilities, hidden states, and
hand-run ablation loops, on tiny random models of several families with padded batches."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from transformers.pytorch_utils import Conv1D

from thinkscope.metrics import measure, parse_metrics
from thinkscope.metrics.rev import COMPONENTS, zscore_mean
from thinkscope.metrics.rev import ablation as rev_ablation
from thinkscope.metrics.rev.ablation import head_plan, logit_shifts, mlp_plan, skip_blocks
from thinkscope.metrics.rev.control import ARITHMETIC, circuit_size, control_texts, controls
from thinkscope.metrics.rev.sib import POOL, clause_reorder, connector_swap, synonym_swap
from thinkscope.models.hooks.interventions import out_projection
from tiny import tiny_lm

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]]
COMPLETIONS = [[20, 21, 22], [23, 24, 25, 26, 27, 28], [29]]


def sharpen(lm, factor: float = 25.0):
    """Scale the query/key projections so attention rows are far from uniform."""
    with torch.no_grad():
        for name, param in lm.model.named_parameters():
            if any(k in name for k in ("q_proj.weight", "k_proj.weight", "c_attn.weight")):
                param.mul_(factor)
    return lm


def rows(lm, prompt, completion):
    """The scoring pass's sequence and the window positions (P-1 .. P+T-2)."""
    ids = list(prompt) + list(completion)[:-1]
    return ids, range(len(prompt) - 1, len(prompt) - 1 + len(completion))


@torch.no_grad()
def reference_ape(lm, prompt, completion) -> tuple[np.ndarray, np.ndarray]:
    """``[T, L]`` twice: loops over layers, heads and window queries of -sum p log p from the
    eager attention probabilities of a float64 copy of the model on the unpadded sequence; and
    the error scale of each entry, the bound on its error being ``u * scale`` in precision u.

    First order, dH = -sum_i p_i (log p_i + H) ds_i; each score is a chain of length-d
    reductions (projections, then q.k), relative error <= gamma_d ~ d*u (Higham), accumulated
    over the l + 1 layers up to layer l, relative to the row's score range R = max - min log p:
    |dH| <= u * d * (l + 1) * R * sum_i p_i |log p_i + H|, averaged over heads like H."""
    model = copy.deepcopy(lm.model).double()
    model.set_attn_implementation("eager")
    ids, window = rows(lm, prompt, completion)
    attentions = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    d = model.config.hidden_size
    table = np.zeros((len(window), len(attentions)))
    scale = np.zeros_like(table)
    for layer, probs in enumerate(attentions):
        p = probs[0].numpy()
        for t, q in enumerate(window):
            ent, sens = [], []
            for h in range(p.shape[0]):
                pairs = [(x, math.log(x)) for x in p[h, q] if x > 0]
                ent.append(-sum(x * lx for x, lx in pairs))
                spread = (max(lx for _, lx in pairs) - min(lx for _, lx in pairs)) * d * (layer + 1)
                sens.append(spread * sum(x * abs(lx + ent[-1]) for x, lx in pairs))
            table[t, layer] = np.mean(ent)
            scale[t, layer] = np.mean(sens)
    return table, scale


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma2"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_ape_matches_eager_attention_entropies_with_padding(family, dtype):
    """Padded batch through ``measure`` against the float64 unpadded reference. In float64 the
    only error that matters is ``ape_layers`` being stored as fp32 (<= 2^-24 relative): a wrong
    window (off by one), a padding position counted, or entropies in log2 fail it. In fp32 the
    bound is the reference's first-order forward error bound with u = 2^-24 (measured: at most
    0.27 of it; in float64 up to 0.95, the storage rounding being a bound met by construction)."""
    lm = sharpen(tiny_lm(family))
    lm.model.to(dtype)
    before = lm.model.config._attn_implementation
    results = measure(lm, PROMPTS, COMPLETIONS, parse_metrics("ape"))
    assert lm.model.config._attn_implementation == before  # switched back after the pass
    u = torch.finfo(dtype).eps / 2
    for prompt, completion, got in zip(PROMPTS, COMPLETIONS, results, strict=True):
        ref, scale = reference_ape(lm, prompt, completion)
        layers = got["ape"].arrays["ape_layers"].double().numpy()
        assert layers.shape == (len(completion), lm.n_layers)
        bound = u * scale + 2**-24 * np.abs(ref)  # forward error, then the fp32 storage
        assert np.all(np.abs(layers - ref) <= bound), np.max(np.abs(layers - ref) / bound)
        # the value is the mean of the float64 table before storage: no storage term
        assert abs(got["ape"].value - ref.mean()) <= u * scale.max()
    spread = np.concatenate([r["ape"].arrays["ape_layers"].numpy().ravel() for r in results])
    assert spread.std() > 0.05  # sharpened: not the uniform log(q + 1) of a random model


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@torch.no_grad()
def test_ae_and_fl_match_the_middle_hidden_state_one_trace_at_a_time(family):
    lm = tiny_lm(family, n_layers=6)
    results = measure(lm, PROMPTS, COMPLETIONS, parse_metrics("ae,fl"))
    for prompt, completion, got in zip(PROMPTS, COMPLETIONS, results, strict=True):
        ids, window = rows(lm, prompt, completion)
        hidden = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        x = hidden[lm.n_layers // 2][0, list(window)].double().numpy()  # [T, d]
        t, d = x.shape
        norms = []
        for i in range(t):
            total = 0.0
            for j in range(d):
                mean = sum(x[k, j] for k in range(t)) / t
                sd = math.sqrt(sum((x[k, j] - mean) ** 2 for k in range(t)) / t) or 1.0
                total += (x[i, j] / sd) ** 2
            norms.append(math.sqrt(total))
        assert got["ae"].value == pytest.approx(sum(norms) / t / t, rel=1e-5)
        flat = sorted(abs(v) for v in x.ravel())
        n = len(flat)
        median = (flat[(n - 1) // 2] + flat[n // 2]) / 2
        expected = (sum(flat) / n + sum(v > median for v in flat) / n) / 2
        assert got["fl"].value == pytest.approx(expected, rel=1e-5)


@torch.no_grad()
def hand_shifts(lm, ids, circuit):
    """Per layer: the MLP output replaced by its mean (own hook), one ablation per forward;
    per circuit head: a copy of the model with that head's output-projection columns zeroed."""
    batch = torch.tensor([ids])
    clean = lm.model(input_ids=batch).logits[0, -1].double()
    mlp = []
    for module in lm.anatomy.mlps:
        handle = module.register_forward_hook(
            lambda _m, _i, out: out.mean(dim=1, keepdim=True).expand_as(out)
        )
        try:
            mlp.append(float((lm.model(input_ids=batch).logits[0, -1].double() - clean).norm()))
        finally:
            handle.remove()
    heads = []
    n_heads = lm.model.config.num_attention_heads
    for layer, head in circuit:  # zero the head's input weights in place, then put them back
        proj = out_projection(lm.anatomy.attentions[layer])
        conv = isinstance(proj, Conv1D)  # gpt2's Conv1D: [in, out]; nn.Linear: [out, in]
        width = proj.weight.shape[0 if conv else 1] // n_heads
        saved = proj.weight.clone()
        cols = slice(head * width, (head + 1) * width)
        proj.weight[(cols, slice(None)) if conv else (slice(None), cols)] = 0
        try:
            heads.append(float((lm.model(input_ids=batch).logits[0, -1].double() - clean).norm()))
        finally:
            proj.weight.copy_(saved)
    return np.array(mlp), np.array(heads)


def test_apl_and_cud_match_a_hand_run_ablation_loop():
    lm = tiny_lm("llama")
    ctl = controls(lm)
    assert len(ctl.circuit) == circuit_size(4, 4) == 3
    # circuit heads: the top heads by mean shift on the arithmetic prompts, by hand
    every = [(layer, head) for layer in range(4) for head in range(4)]
    arith = [lm.tokenizer(t)["input_ids"] for t in ARITHMETIC]
    mean_shift = np.mean([hand_shifts(lm, ids, every)[1] for ids in arith], axis=0)
    assert [tuple(c) for c in ctl.circuit] == [every[i] for i in np.argsort(-mean_shift)[:3]]
    # control thresholds: mean + sample sd of the hand shifts over the control texts
    control = np.array(
        [
            np.concatenate(hand_shifts(lm, lm.tokenizer(t)["input_ids"], ctl.circuit))
            for t in control_texts()
        ]
    )
    threshold = control.mean(0) + control.std(0, ddof=1)
    np.testing.assert_allclose(ctl.mlp_threshold(), threshold[:4], rtol=1e-5)
    np.testing.assert_allclose(ctl.head_threshold(), threshold[4:], rtol=1e-5)
    # per trace (batched with padding): the same shifts and the same active shares
    results = measure(lm, PROMPTS, COMPLETIONS, parse_metrics("apl,cud"))
    seqs = [p + c for p, c in zip(PROMPTS, COMPLETIONS, strict=True)]
    batched = logit_shifts(lm, seqs, mlp_plan(lm))
    for seq, got, row in zip(seqs, results, batched, strict=True):
        mlp, heads = hand_shifts(lm, seq, ctl.circuit)
        np.testing.assert_allclose(row, mlp, rtol=1e-5, atol=1e-7)
        assert got["apl"].value == np.mean(mlp > ctl.mlp_threshold())
        assert got["cud"].value == np.mean(heads > ctl.head_threshold())


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma2", "phi"])
def test_truncated_ablation_passes_match_full_passes_in_several_batches(family, monkeypatch):
    """Every MLP and every head (so ablations start at every block), sequences of three lengths
    split into a one-row batch and a padded two-row batch: each shift equals the hand-run full
    pass on the unpadded sequence, and the blocks below an ablation never ran."""
    lm = tiny_lm(family)
    seqs = [list(range(5, 15)), [20, 21, 22, 23], [30, 31, 32, 33, 34, 35]]
    monkeypatch.setattr(rev_ablation, "BATCH_TOKENS", 12)  # batches: [10 tokens], [6, 4]
    plan = [*mlp_plan(lm), *head_plan(lm)]
    calls = [0]
    counters = [
        m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        for m in lm.anatomy.mlps
    ]
    try:
        got = logit_shifts(lm, seqs, plan)
    finally:
        for counter in counters:
            counter.remove()
    blocks_run = sum(lm.n_layers - a.layer for a in plan) + lm.n_layers  # + the clean pass
    assert calls[0] == 2 * blocks_run  # two batches
    every = [(a.layer, a.head) for a in plan if a.head is not None]
    for seq, row in zip(seqs, got, strict=True):
        mlp, heads = hand_shifts(lm, seq, every)
        assert mlp.min() > 1e-4 and heads.min() > 1e-6  # every ablation moves the logits
        np.testing.assert_allclose(row, np.concatenate([mlp, heads]), rtol=1e-5, atol=1e-7)
    assert all("forward" not in vars(b) for b in lm.anatomy.layers)  # the stubs are gone


def test_skip_blocks_restores_a_forward_wrapper_it_found():
    lm = tiny_lm("llama")
    block = lm.anatomy.layers[0]
    wrapper = block.forward  # an instance attribute, as accelerate's device hooks set
    block.forward = wrapper
    with torch.no_grad(), skip_blocks(lm, ["stub"]):
        assert block(torch.zeros(1, 2, 64)) == "stub"
    assert vars(block)["forward"] is wrapper


def test_zscores_against_a_plain_loop():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(9, 6))
    values[2, 1] = values[5, 4] = np.nan
    values[:, 3] = 0.25  # constant over the run: no z-score, skipped
    signs = {"ae": -1, "ape": 1, "apl": -1, "cud": 1, "sib": 1, "fl": -1}
    for robust in (False, True):
        got = zscore_mean(values, robust)
        for i in range(9):
            zs = []
            for k, name in enumerate(COMPONENTS):
                column = [signs[name] * v for v in values[:, k] if not math.isnan(v)]
                if math.isnan(values[i, k]):
                    continue
                if robust:
                    center = float(np.median(column))
                    scale = 1.4826 * float(np.median([abs(c - center) for c in column]))
                else:
                    center = sum(column) / len(column)
                    scale = math.sqrt(sum((c - center) ** 2 for c in column) / len(column))
                if scale > 0:
                    zs.append((signs[name] * values[i, k] - center) / scale)
            assert got[i] == pytest.approx(sum(zs) / len(zs), rel=1e-12)
    assert math.isnan(zscore_mean(np.full((3, 6), np.nan))[0])


def test_paraphrase_rules_change_what_they_find_and_are_seeded():
    text = "If Tom has 3 apples and buys 2, how many does he have? Calculate the total."
    assert synonym_swap(text) == synonym_swap(text) != text
    assert connector_swap(text) != text and connector_swap(text).count(" ") > text.count(" ")
    assert clause_reorder(text).startswith("How many does he have, if Tom")
    assert clause_reorder("No commas here.") == "No commas here."


@torch.no_grad()
def test_sib_matches_pooled_middle_states():
    lm = tiny_lm("llama", n_layers=4)
    text = "If Tom has 3 apples and buys 2, how many does he have? Calculate the total. " * 2
    prompt = lm.tokenizer(text)["input_ids"]
    (got,) = measure(lm, [prompt], [[20, 21]], parse_metrics("sib"))

    def pooled(ids):
        hidden = lm.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        return hidden[2][0, : len(ids) - 1][-POOL:].double().mean(0)

    base = pooled(prompt)
    decoded = lm.tokenizer.decode(prompt, skip_special_tokens=False)
    sims = []
    for rule in (synonym_swap, clause_reorder, connector_swap):
        other = pooled(lm.tokenizer(rule(decoded), add_special_tokens=False)["input_ids"])
        sims.append(float(base @ other / (base.norm() * other.norm())))
    assert got["sib"].value == pytest.approx(np.mean(sims), abs=1e-9)
    assert got["sib"].value < 1 - 1e-6  # the paraphrases did change the pooled states


def test_empty_completion_gives_nan_in_pass_metrics():
    lm = tiny_lm("llama")
    got = measure(lm, [[5, 6, 7], [8, 9]], [[], [10, 11]], parse_metrics("ae,fl,ape"))
    assert all(math.isnan(got[0][m].value) for m in ("ae", "fl", "ape"))
    assert not any(math.isnan(got[1][m].value) for m in ("ae", "fl", "ape"))
