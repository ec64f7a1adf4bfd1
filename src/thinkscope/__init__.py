"""thinkscope: measure how deeply a language model thinks while it reasons.

The public names load lazily, so ``thinkscope --help`` does not pay for importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "LM": "thinkscope.models",
    "load_model": "thinkscope.models",
    "Run": "thinkscope.runstore",
    "Grade": "thinkscope.tasks.answers",
    "grade": "thinkscope.tasks.answers",
    "Problem": "thinkscope.tasks.problem",
    "load_problems": "thinkscope.tasks.loaders",
    "Trace": "thinkscope.runstore.trace",
    "SamplingParams": "thinkscope.generation.sampler",
    "BatchSampler": "thinkscope.generation.sampler",
    "score": "thinkscope.scoring",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'thinkscope' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
