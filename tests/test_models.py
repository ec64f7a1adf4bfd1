import copy

import pytest
import torch

from thinkscope.core.errors import UserError
from thinkscope.models import LM, load_model
from tiny import FAMILIES, tiny_lm


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_adapter_finds_the_parts_and_reproduces_the_logits(family):
    lm = tiny_lm(family)
    assert lm.n_layers == 4
    assert lm.anatomy.final_norm is not None
    assert len(lm.anatomy.attentions) == len(lm.anatomy.mlps) == 4
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with lm.record_blocks() as states:
        logits = lm.model(input_ids=ids).logits
    assert len(states) == lm.n_layers
    torch.testing.assert_close(lm.head(states[-1]), logits, atol=1e-5, rtol=0)


def test_gemma2_softcap_is_applied():
    lm = tiny_lm("gemma2")
    assert lm.anatomy.softcap == 5.0
    ids = torch.tensor([[5, 17, 42]])
    with lm.record_blocks() as states:
        logits = lm.model(input_ids=ids).logits
    assert logits.abs().max() <= 5.0
    torch.testing.assert_close(lm.head(states[-1]), logits, atol=1e-5, rtol=0)


def test_unknown_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown model"):
        load_model("no-such-org/no-such-model-xyz")
    with pytest.raises(UserError, match="neither a model directory"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="GGUF file not found"):
        load_model(str(tmp_path / "missing.gguf"))


@pytest.mark.integration
def test_bundled_model_loads_in_fp32_with_a_chat_template(bundled_lm):
    assert bundled_lm.dtype == torch.float32
    assert bundled_lm.n_layers == 30
    assert bundled_lm.has_chat_template
    assert bundled_lm.vocab_size == 49152


def test_wrap_leaves_the_callers_tokenizer_alone():
    from tiny import tiny_model, tiny_tokenizer

    tokenizer = copy.deepcopy(tiny_tokenizer())
    tokenizer.pad_token = None
    assert tokenizer.pad_token_id is None
    lm = LM.wrap(tiny_model("llama"), tokenizer)
    assert tokenizer.pad_token_id is None  # the caller's object is unchanged
    assert lm.tokenizer.pad_token_id == lm.tokenizer.eos_token_id is not None
    assert lm.tokenizer("3 + 5")["input_ids"] == tokenizer("3 + 5")["input_ids"]
