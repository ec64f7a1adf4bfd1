"""Tiny random models of several families and a locally trained tokenizer, for unit tests."""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from thinkscope.models import LM

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "What is 3 + 5? 3 + 5 = 8. The answer is 8.",
    "Calculate 12 - 7. 12 - 7 = 5. The answer is 5.",
    "Janet has 16 eggs and eats 3. She sells the rest for $2 each, making $26.",
    "Think step by step, then finish with 'The answer is N.' #### 42 \\boxed{18}",
    "<think> reasoning </think> <answer> 7 </answer> Question: Answer: A: B:",
] * 20

FAMILIES = {
    "llama": dict(model_type="llama", num_key_value_heads=2),
    "qwen2": dict(model_type="qwen2", num_key_value_heads=2),
    "qwen3": dict(model_type="qwen3", num_key_value_heads=2, head_dim=16),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=4, n_head=4, n_positions=256),
    "gemma": dict(model_type="gemma", num_key_value_heads=1, head_dim=16),
    "gemma2": dict(
        model_type="gemma2",
        num_key_value_heads=2,
        head_dim=16,
        final_logit_softcapping=5.0,
        attn_logit_softcapping=50.0,
    ),
    "phi3": dict(model_type="phi3", num_key_value_heads=4),
    "phi": dict(model_type="phi", num_key_value_heads=4),
}
_MAMBA = dict(mamba_d_state=8, mamba_expand=2, mamba_d_conv=4)
_MAMBA2 = dict(_MAMBA, mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_chunk_size=16)
_EXPERTS = dict(num_experts_per_tok=2)
#: Hybrid, state-space and mixture-of-experts families, as tiny random models.
HYBRID_FAMILIES = {
    "lfm2": dict(
        model_type="lfm2",
        num_key_value_heads=2,
        layer_types=["conv", "full_attention"] * 2,
        block_ff_dim=128,
        block_auto_adjust_ff_dim=False,
    ),
    "jamba": dict(
        model_type="jamba",
        num_key_value_heads=2,
        num_experts=4,
        expert_layer_period=2,
        expert_layer_offset=1,
        attn_layer_period=2,
        attn_layer_offset=1,
        mamba_dt_rank=8,
        **_MAMBA,
        **_EXPERTS,
    ),
    "mamba2": dict(
        model_type="mamba2",
        num_heads=8,
        head_dim=16,
        state_size=8,
        n_groups=1,
        expand=2,
        conv_kernel=4,
        chunk_size=16,
    ),
    "qwen3_next": dict(
        model_type="qwen3_next",
        num_key_value_heads=2,
        head_dim=16,
        num_experts=4,
        moe_intermediate_size=32,
        shared_expert_intermediate_size=32,
        linear_num_value_heads=4,
        linear_num_key_heads=2,
        linear_key_head_dim=16,
        linear_value_head_dim=16,
        linear_conv_kernel_dim=4,
        layer_types=["linear_attention", "full_attention"] * 2,
        **_EXPERTS,
    ),
    "granitemoehybrid": dict(
        model_type="granitemoehybrid",
        num_key_value_heads=2,
        num_local_experts=4,
        shared_intermediate_size=64,
        layer_types=["mamba", "attention"] * 2,
        **_MAMBA2,
        **_EXPERTS,
    ),
    "falcon_h1": dict(
        model_type="falcon_h1", num_key_value_heads=2, head_dim=16, mamba_d_ssm=128, **_MAMBA2
    ),
    "qwen3_moe": dict(
        model_type="qwen3_moe",
        num_key_value_heads=2,
        head_dim=16,
        num_experts=4,
        moe_intermediate_size=32,
        **_EXPERTS,
    ),
    "gpt_oss": dict(
        model_type="gpt_oss",
        num_key_value_heads=2,
        head_dim=16,
        num_local_experts=4,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"] * 2,
        **_EXPERTS,
    ),
}
FAMILIES.update(HYBRID_FAMILIES)


@functools.cache
def tiny_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a few arithmetic sentences (~300 tokens)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>", "<|user|>", "<|assistant|>", "<|system|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_model(family: str, n_layers: int = 4, seed: int = 0, vocab: int | None = None):
    """A randomly initialised model of ``family`` with hidden size 64 and ``n_layers`` blocks."""
    extra = dict(FAMILIES[family])
    model_type = extra.pop("model_type")
    size = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    if model_type == "gpt2":
        size = {"n_layer": n_layers}
    tok = tiny_tokenizer()
    config = AutoConfig.for_model(
        model_type,
        vocab_size=vocab or len(tok),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
        **{**size, **extra},
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # random init leaves some norms at identity; perturb so they matter
        for name, param in model.named_parameters():
            if "norm" in name or "ln" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model.eval()


def tiny_lm(family: str = "llama", n_layers: int = 4, seed: int = 0, chat: bool = True) -> LM:
    return LM.wrap(tiny_model(family, n_layers, seed), tiny_tokenizer(chat), name=f"tiny-{family}")
