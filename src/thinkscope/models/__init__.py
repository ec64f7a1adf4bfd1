"""Load any Hugging Face causal LM as an :class:`LM`: model, tokenizer and the probed anatomy.

Names load lazily: the model spec is read (by the CLI, by a config) without importing torch.
"""

from thinkscope.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "LM": "thinkscope.models.lm",
        "load_model": "thinkscope.models.lm",
        "load_tokenizer": "thinkscope.models.lm",
        "default_dtype": "thinkscope.models.lm",
        "BUNDLED_NAME": "thinkscope.models.bundled",
        "ModelSpec": "thinkscope.models.spec",
        "identify": "thinkscope.models.identity",
    },
)
