"""Hybrid, state-space and mixture-of-experts families (``tiny.HYBRID_FAMILIES``): the probed
anatomy against what each config declares, and the lens against a float64 reference.

Each test records the capability it shows and its outcome (pytest's ``record_property``):
``scripts/compatibility.py`` turns them into the compatibility table of the docs.
"""

import copy
import json

import pytest
import torch

from test_lens import masked_reference, random_ids
from thinkscope.cli.app import main
from thinkscope.lens import lens_profile, sampled_states
from thinkscope.models import LM
from tiny import HYBRID_FAMILIES, tiny_lm, tiny_model, tiny_tokenizer

FAMILIES = sorted(HYBRID_FAMILIES)
ATTENTION = {"full_attention", "sliding_attention", "attention"}
#: The mixer of each family's non-attention layers: the config does not tell (transformers
#: calls Mamba layers ``linear_attention`` too), the family's own modules do.
RECURRENT = {
    "lfm2": "convolution",
    "jamba": "ssm",
    "mamba2": "ssm",
    "qwen3_next": "linear_attention",
    "granitemoehybrid": "ssm",
    "falcon_h1": "ssm",
}
NAMES = {"ssm": "SSM", "linear_attention": "linear attention"}


def declared_mixers(family: str, config) -> list[set[str]]:
    """Each layer's token mixers as ``config.layer_types`` declares them (all attention
    without it); ``hybrid`` (Falcon-H1) is SSM and attention side by side in one block."""
    types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    recurrent = {RECURRENT.get(family)}
    kinds = {"hybrid": recurrent | {"attention"}, **{t: {"attention"} for t in ATTENTION}}
    return [kinds.get(t, recurrent) for t in types]


def declared_experts(config, n_layers: int) -> list[bool]:
    """Which layers route to experts, by the config: Jamba's ``layers_num_experts``, else
    Qwen's ``mlp_only_layers`` and ``decoder_sparse_step`` over ``num_(local_)experts``."""
    if getattr(config, "layers_num_experts", None):
        return [count > 1 for count in config.layers_num_experts]
    count = getattr(config, "num_experts", None) or getattr(config, "num_local_experts", None)
    dense = getattr(config, "mlp_only_layers", None) or []
    step = getattr(config, "decoder_sparse_step", None) or 1
    return [bool(count) and i not in dense and (i + 1) % step == 0 for i in range(n_layers)]


def blocks_text(mixers: list[set[str]], experts: list[bool]) -> str:
    """What the blocks mix, for the table: ``a / b`` layers of either kind, ``a + b`` both in
    one block, ``experts`` when any layer routes to experts."""
    kinds = dict.fromkeys(
        " + ".join(NAMES.get(k, k) for k in sorted(m, key=lambda k: k == "attention"))
        for m in mixers
    )
    return " / ".join(kinds) + (", experts" if any(experts) else "")


@pytest.mark.parametrize("family", FAMILIES)
def test_anatomy_matches_the_config(family, record_property):
    lm = tiny_lm(family)
    config, anatomy = lm.model.config, lm.anatomy
    mixers = declared_mixers(family, config)
    experts = declared_experts(config, lm.n_layers)
    assert len(mixers) == lm.n_layers == 4
    assert [set(m) for m in anatomy.mixers] == mixers
    assert list(anatomy.experts) == experts
    with_attention = [i for i, m in enumerate(mixers, start=1) if "attention" in m]
    assert anatomy.attention_layers == with_attention
    assert [a is not None for a in anatomy.attentions] == ["attention" in m for m in mixers]
    assert all((mlp is None) == (family == "mamba2") for mlp in anatomy.mlps)  # Mamba2: no MLP
    record_property("family", family)
    record_property("blocks", blocks_text(mixers, experts))
    record_property("capability", "anatomy")
    record_property("outcome", "works")


def sharpened(lm: LM, scale: float = 14.0) -> LM:
    """``lm`` with its unembedding scaled, on a copy of the weight: LFM2 ties it to the input
    embedding, which must stay as it is. 14 makes every family's JSDs reach 0.09 nats."""
    head = lm.anatomy.unembed
    head.weight = torch.nn.Parameter(head.weight.detach() * scale)
    return lm


def assert_lens_is_exact(lm: LM, seed: int = 1) -> dict[str, torch.Tensor]:
    """The lens profile of 12 tokens against the float64 head applied to the same recorded block
    outputs; the last layer against the model's own logits. Returns the reference."""
    prompt, completion = random_ids(8, seed), random_ids(12, seed + 1)
    states, targets = sampled_states(lm, [prompt], [completion])
    exact = copy.deepcopy(lm)
    exact.model.double()
    with torch.no_grad():
        ref = masked_reference(exact, [s.double() for s in states])
        top = torch.stack([exact.head(s.double()).topk(5).indices for s in states], 1)
        logits = lm.model(input_ids=torch.tensor([prompt + completion])).logits[0].double()
    prof = lens_profile(lm, states, targets=targets, kl=True, topk=5)
    assert prof.jsd.shape == (12, lm.n_layers)
    torch.testing.assert_close(prof.jsd.double(), ref["jsd"], atol=1e-5, rtol=0)
    # KL and entropy are unbounded: float32 gives them ~1e-6 relative error
    torch.testing.assert_close(prof.kl.double(), ref["kl"], atol=1e-5, rtol=2e-6)
    torch.testing.assert_close(prof.entropy.double(), ref["entropy"], atol=1e-5, rtol=2e-6)
    assert torch.equal(prof.topk_ids, top)
    # p_{t,L} is the distribution token t was drawn from: the logits one position before it.
    # fp32 log p rounds at a few u S (S: the row's largest |log p|), bound as in test_lens.
    own = torch.log_softmax(logits[len(prompt) - 1 : -1], -1)
    bound = 16 * 2**-24 * own.abs().amax(-1)
    taken = own.gather(1, targets[:, None]).squeeze(1)
    assert torch.all((prof.final.token_logprob.double() - taken).abs() <= bound)
    return ref


@pytest.mark.parametrize("sharp", [False, True], ids=["diffuse", "sharp"])
@pytest.mark.parametrize("family", FAMILIES)
def test_lens_matches_the_float64_reference(family, sharp, record_property):
    lm = sharpened(tiny_lm(family)) if sharp else tiny_lm(family)
    ref = assert_lens_is_exact(lm)
    if sharp:  # layers disagree, so a wrong layer or head would show
        assert ref["jsd"][:, :-1].max() > 0.05
    record_property("family", family)
    record_property("capability", "lens")
    record_property("outcome", "works")


def test_falcon_h1_head_multiplier_is_part_of_the_head(record_property):
    """Falcon-H1 checkpoints scale the logits by ``lm_head_multiplier`` (MuP; 1 in the tiny
    config): without it the head would not reproduce the model and loading would be refused."""
    model = tiny_model("falcon_h1")
    model.config.lm_head_multiplier = model.model.lm_head_multiplier = 0.25
    lm = LM.wrap(model, tiny_tokenizer())
    assert lm.anatomy.logit_multiplier == 0.25
    assert_lens_is_exact(sharpened(lm, 56.0))
    record_property("family", "falcon_h1")
    record_property("capability", "lens")
    record_property("outcome", "works")


@pytest.mark.parametrize("family", FAMILIES)
def test_models_inspect_lists_the_layers_of_a_saved_model(
    family, tmp_path, capsys, record_property
):
    """The user's path: a checkpoint folder, loaded by ``load_model``, one row per layer."""
    model = tiny_model(family)
    model.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["models", "inspect", str(tmp_path), "--format", "json", "--dtype", "float32"])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    rows = json.loads(out)
    mixers = declared_mixers(family, model.config)
    assert [row["layer"] for row in rows] == [1, 2, 3, 4]
    assert [row["block"] for row in rows] == [type(b).__name__ for b in model.base_model.layers]
    names = {NAMES.get(k, k): k for k in (*NAMES, "attention", "convolution")}
    assert [{names[k] for k in row["mixers"].split(" + ")} for row in rows] == mixers
    assert [row["experts"] for row in rows] == declared_experts(model.config, 4)
    attention = [i for i, m in enumerate(mixers, start=1) if "attention" in m]
    reach = {
        0: "no layer has attention: APE and head ablation are refused",
        4: "every layer has attention",
    }.get(len(attention), f"attention on layers {', '.join(map(str, attention))}:")
    assert f"{family}: 4 layers, hidden size 64" in err and reach in " ".join(err.split())
    record_property("family", family)
    record_property("capability", "models inspect")
    record_property("outcome", "works")
