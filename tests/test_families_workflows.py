"""Every workflow on the hybrid, state-space and mixture-of-experts families of tests/tiny.py:
score, think-at-n, APE and head ablation on the attention layers only, interp (collect,
directions, steering, layer ablation, patching) and LoRA targets.

Each test records its outcome for the compatibility table (``record_property``: capability,
outcome ``works`` or ``refused: <reason>``).
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys

import numpy as np
import pytest
import torch

from thinkscope.core.errors import UserError
from thinkscope.experiments.rev.evaluate import measured_layers, run_rev
from thinkscope.generation.pipeline import GenerateConfig, generate_run, sample_seed
from thinkscope.generation.sampler import BatchSampler, SamplingParams
from thinkscope.interp import ablate_heads, ablate_layers, collect, diff_in_means, patch, steer
from thinkscope.interp.activations import record
from thinkscope.metrics import measure, parse_metrics
from thinkscope.metrics.rev.ablation import Ablation, head_plan, logit_shifts, mlp_plan
from thinkscope.scoring import score
from thinkscope.select import Pool, PrefixDTR, cons_at_n, pool_mismatches, think_at_n
from tiny import HYBRID_FAMILIES, tiny_lm, tiny_tokenizer

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19]]
COMPLETIONS = [[20, 21, 22], [23, 24, 25, 26, 27, 28], [29]]
RUN = GenerateConfig(
    model="tiny", task="gsm8k", questions=2, n=2, max_new_tokens=6, batch_size=4, temperature=1.0
)
families = pytest.mark.parametrize("family", list(HYBRID_FAMILIES))


def outcome(record_property, capability: str, refusal: UserError | None = None) -> None:
    record_property("capability", capability)
    record_property("outcome", f"refused: {refusal}" if refusal else "works")


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@torch.no_grad()
def eager_entropies(lm, prompt, completion) -> np.ndarray:
    """``[T, A]``: mean over heads of each window row's attention entropy (nats), from the
    eager attention probabilities of a float64 copy on the unpadded sequence; A = the layers
    whose attention transformers reports (``output_attentions``)."""
    model = copy.deepcopy(lm.model).double()
    model.set_attn_implementation("eager")
    model.set_experts_implementation("eager")  # grouped_mm takes no float64
    ids = list(prompt) + list(completion)[:-1]
    out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    window = list(range(len(prompt) - 1, len(prompt) - 1 + len(completion)))
    rows = [torch.special.entr(a[0]).sum(-1).mean(0)[window] for a in out.attentions]
    return torch.stack(rows, dim=1).numpy()


@families
def test_ape_is_measured_on_the_attention_layers_only(family, record_property):
    """APE against plain eager attention entropies on exactly the layers with attention (a
    hook on a linear-attention or SSM block, or a missing layer, changes the shape; a shifted
    window changes the values by ~0.1). Bound: the fp32 forward error of a depth-4, d=64
    model, u * d * L * ln(S) (~4e-5), which the fp32 storage (2^-24 relative) is inside."""
    lm = tiny_lm(family)
    if not lm.anatomy.attention_layers:
        with pytest.raises(UserError, match="'ape' needs attention.*mamba2.*has none") as err:
            measure(lm, PROMPTS, COMPLETIONS, parse_metrics("ape"))
        return outcome(record_property, "ape", one_line(err))
    results = measure(lm, PROMPTS, COMPLETIONS, parse_metrics("ape"))
    attention = len(lm.anatomy.attention_layers)
    for prompt, completion, got in zip(PROMPTS, COMPLETIONS, results, strict=True):
        want = eager_entropies(lm, prompt, completion)
        layers = got["ape"].arrays["ape_layers"].double().numpy()
        assert layers.shape == want.shape == (len(completion), attention)
        bound = 2**-24 * 64 * lm.n_layers * math.log(len(prompt) + len(completion))
        assert np.abs(layers - want).max() <= bound
        assert abs(got["ape"].value - want.mean()) <= bound
    outcome(record_property, "ape")


@families
def test_head_and_mlp_ablations_cover_the_parts_that_exist(family, record_property):
    """``cud``'s head plan covers the attention layers' heads and ``apl``'s MLP plan the blocks
    with a feed-forward part; zeroing a head moves the logits; a head or ``attn`` ablation of a
    block without attention is refused in one line before any hook is registered."""
    lm = tiny_lm(family)
    anatomy = lm.anatomy
    heads = head_plan(lm)
    assert sorted({a.layer + 1 for a in heads}) == anatomy.attention_layers
    assert [a.layer for a in mlp_plan(lm)] == [i for i, m in enumerate(anatomy.mlps) if m]
    plain = [i for i in range(1, lm.n_layers + 1) if i not in anatomy.attention_layers]
    for layer in plain:
        with pytest.raises(UserError, match=f"block {layer} has no attention"):
            ablate_heads(lm, {layer: [0]})
        with pytest.raises(UserError, match=f"block {layer} has no attention"):
            ablate_layers(lm, [*anatomy.attention_layers[:1], layer], component="attn")
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in lm.model.modules())
    if not heads:
        with pytest.raises(UserError, match="needs attention") as err:
            measure(lm, PROMPTS, COMPLETIONS, parse_metrics("cud"))
        return outcome(record_property, "head ablation", one_line(err))
    shifts = logit_shifts(lm, PROMPTS, [heads[0], heads[-1], Ablation(heads[-1].layer, 0)])
    assert (shifts[:, :2] > 0).all()  # every zeroed head moves the final logits
    outcome(record_property, "head ablation")


@families
def test_score_with_every_metric_that_applies(family, tmp_path, record_property):
    """A generated run scored with DTR, the confidence metrics and REV's in-pass metrics (APE
    where the model has attention); scores.json records the layers APE measured."""
    lm = tiny_lm(family)
    generate_run(RUN, tmp_path / "run", lm=lm, show_progress=False)
    metrics = "dtr,length,confidence,ae,fl" + (",ape" if lm.anatomy.attention_layers else "")
    frame = score(lm, tmp_path / "run", metrics=metrics, show_progress=False)
    for spec in parse_metrics(metrics):
        assert spec.column in frame
    assert frame["length"].gt(0).any()
    assert np.isfinite(frame.loc[frame["length"] > 0, "dtr"]).all()
    assert np.isfinite(frame.loc[frame["length"] > 1, ["logprob", "ae"]].to_numpy()).all()
    record_ = json.loads((tmp_path / "run" / "scores.json").read_text())
    if lm.anatomy.attention_layers:
        assert record_["columns"]["ape"]["layers"] == {"attention": lm.anatomy.attention_layers}
    assert "layers" not in record_["columns"]["dtr"]
    outcome(record_property, "score")


def test_ape_on_mamba2_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """``thinkscope score RUN --metrics rev`` on a model with no attention: one line naming the
    reason, and the run folder is left exactly as it was (nothing scored, nothing logged)."""
    from thinkscope.cli.app import main

    lm = tiny_lm("mamba2")
    model_dir = tmp_path / "mamba2"
    lm.model.save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    generate_run(RUN.model_copy(update={"model": str(model_dir)}), tmp_path / "run", lm=lm)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    capsys.readouterr()  # what generation printed
    monkeypatch.setattr(
        sys, "argv", ["thinkscope", "score", str(tmp_path / "run"), "--metrics", "rev"]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code != 0
    assert len(err.splitlines()) == 1, err
    assert "'ape'" in err and "need attention" in err and "(mamba2) has none" in err
    assert "'apl'" in err and "feed-forward" in err
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before
    with pytest.raises(UserError, match="'ape', 'cud', 'rev', 'rev-robust' need attention"):
        run_rev([tmp_path / "run"], tmp_path / "rev")  # nor the REV experiment
    assert not (tmp_path / "rev").exists()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before


def test_the_rev_experiment_notes_the_layers_it_measured():
    assert measured_layers(tiny_lm("lfm2")) == {
        "attention_layers": "2,4",
        "feed_forward_layers": "1,2,3,4",
    }
    assert measured_layers(tiny_lm("falcon_h1"))["attention_layers"] == "1,2,3,4"


@families
def test_think_at_n_continues_the_kept_samples_of_a_shared_pool(family, record_property):
    """Think@n (prefix DTR) and Cons@n on one pool of two questions with prompts of different
    lengths and 21 end-of-sequence ids (rows finish at different steps): the kept samples,
    finished from their prefix's cache, are token for token the Cons@n samples."""
    lm = tiny_lm(family)
    lm.model.generation_config.eos_token_id = [lm.tokenizer.eos_token_id, *range(40, 60)]
    texts = ["What is 3 + 5?", "Calculate 12 - 7. Think step by step, then answer."]
    prompts = [lm.tokenizer(t)["input_ids"] for t in texts]
    seeds = [[sample_seed(0, f"q{q}", k) for k in range(4)] for q in range(2)]
    params = SamplingParams(temperature=1.0, max_new_tokens=8, top_logprobs=20)
    pool = Pool(lm, prompts, seeds, params)
    cons = cons_at_n(pool)
    think = think_at_n(pool, PrefixDTR(lm, g=0.0013, rho=0.75), prefix=3, keep_ratio=0.5)
    assert pool_mismatches(think, cons) == [0, 0]
    for q in range(2):
        assert len(think.voters[q]) == 2
        for k in think.voters[q]:
            assert think.completions[q][k].token_ids == cons.completions[q][k].token_ids
    outcome(record_property, "think-at-n")


@families
def test_interp_steer_collect_directions_ablate_and_patch(family, record_property):
    """Directions from collected block outputs; greedy steering at alpha 0 is the plain greedy
    completion and a large alpha changes it; a zeroed block passes its input through; patching
    a block's output at every position gives the source's logits."""
    lm = tiny_lm(family)
    texts = ["What is 3 + 5?", "Calculate 12 - 7.", "Janet has 16 eggs.", "The answer is 8."]
    layers = list(range(1, lm.n_layers + 1))
    a, b = collect(lm, texts[:2], layers, "last"), collect(lm, texts[2:], layers, "last")
    with lm.record_blocks() as states, torch.no_grad():
        lm.model(input_ids=torch.tensor([lm.tokenizer(texts[0])["input_ids"]]))
    stats = collect(lm, texts[:1], layers, "last")
    for k, state in enumerate(states):
        assert np.allclose(stats.mean[k], state[0, -1].double().numpy(), atol=1e-6)
    dirs = diff_in_means(a, b, lm.name, ("a", "b"))
    ids = lm.tokenizer(texts[0])["input_ids"]
    params = SamplingParams(temperature=0, max_new_tokens=6)

    def greedy() -> list[int]:
        sampler = BatchSampler(lm, [ids], [0], params)
        sampler.run()
        return sampler.completions[0].token_ids

    def last_logits() -> torch.Tensor:
        with torch.no_grad():
            return lm.model(input_ids=x).logits[0, -1]

    x, v = torch.tensor([ids]), dirs.at(2, unit=False)
    plain, plain_logits = greedy(), last_logits()
    with steer(lm, {2: v}, alpha=0.0):
        assert greedy() == plain
    with steer(lm, {2: v}, alpha=8.0):
        steered, steered_logits = greedy(), last_logits()
    by_hand = lm.anatomy.layers[1].register_forward_hook(
        lambda _m, _i, out: (out[0] + 8.0 * v, *out[1:]) if isinstance(out, tuple) else out + 8 * v
    )
    hand, hand_logits = greedy(), last_logits()  # the same, KV cache or not
    by_hand.remove()
    assert steered == hand
    assert torch.allclose(steered_logits, hand_logits, atol=1e-5)
    assert not torch.allclose(steered_logits, plain_logits, atol=1e-2)
    with torch.no_grad(), ablate_layers(lm, [3]), lm.record_blocks() as seen:
        lm.model(input_ids=x)
    assert torch.equal(seen[2], seen[1])  # block 3's output is its input
    source = record(lm, texts[:1], [2])  # patched into the reversed ids at every position
    with torch.no_grad(), patch(lm, source):
        got = lm.model(input_ids=x.flip(1)).logits
    with torch.no_grad():
        assert torch.allclose(got, lm.model(input_ids=x).logits, atol=1e-5)
    outcome(record_property, "interp steer")


#: The block children that LoRA must adapt in each family (attention, linear attention, SSM,
#: convolution block, feed-forward parts), and whether fused expert weights are adapted.
LORA_PARTS = {
    "lfm2": ({"self_attn", "conv", "feed_forward"}, False),
    "jamba": ({"self_attn", "mamba", "feed_forward"}, True),
    "mamba2": ({"mixer"}, False),
    "qwen3_next": ({"self_attn", "linear_attn", "mlp"}, True),
    "granitemoehybrid": ({"self_attn", "mamba", "shared_mlp", "block_sparse_moe"}, True),
    "falcon_h1": ({"self_attn", "mamba", "feed_forward"}, False),
    "qwen3_moe": ({"self_attn", "mlp"}, True),
    "gpt_oss": ({"self_attn", "mlp"}, True),
}


@families
def test_lora_adapts_every_mixer_and_a_step_changes_the_output(family, tmp_path, record_property):
    """LoRA targets from the anatomy (hand-listed per family in :data:`LORA_PARTS`), built by
    TRL and PEFT; with dropout (no fused experts) PEFT builds them too; one step of TRL's loss
    changes the output."""
    peft = pytest.importorskip("peft")
    pytest.importorskip("trl")
    from thinkscope.sft.trainer import TrainConfig, build_trainer, lora_targets

    lm = tiny_lm(family)
    with_dropout = peft.LoraConfig(lora_dropout=0.05, target_modules=lora_targets(lm, False)[0])
    peft.get_peft_model(copy.deepcopy(lm.model), with_dropout)  # no parameter LoRA: no error
    data = tmp_path / "rows.jsonl"
    rows = [
        {"prompt": f"What is {a} + {b}?", "response": f" {a + b}."} for a, b in [(3, 5), (2, 2)]
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig(
        model="tiny",
        dataset=str(data),
        max_steps=1,
        batch_size=2,
        learning_rate=1e-2,
        lora_rank=4,
        max_length=64,
        lora_dropout=0.0,
    )
    x = torch.tensor([PROMPTS[0]])
    with torch.no_grad():
        before = lm.model(input_ids=x).logits
    trainer = build_trainer(config, tmp_path / "out", lm=lm, progress=False)
    names = [n for n, _ in trainer.model.named_parameters() if "lora_" in n]
    adapted = {re.search(r"layers\.\d+\.([^.]+)\.", n).group(1) for n in names}
    parts, experts = LORA_PARTS[family]
    assert adapted == parts
    lora = trainer.model.peft_config["default"]
    assert bool(lora.target_parameters) == experts
    assert not any(
        n.endswith("mamba.out_proj") or n.endswith("mixer.out_proj") for n in lora.target_modules
    )
    model = trainer.model.train()  # one step of TRL's own loss (MoE auxiliary loss included)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.compute_loss(model, batch).backward()
    torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
    with torch.no_grad():
        after = model.eval()(input_ids=x).logits
    assert (after - before).abs().max() > 1e-3
    outcome(record_property, "lora")
