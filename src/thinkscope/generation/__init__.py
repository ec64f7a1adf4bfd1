"""Generation: the batched n-sample sampler with per-token records, the sample seeds, the
HF and vLLM backends, and the generate stage that writes a run folder. Names load lazily."""

from thinkscope.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        name: "thinkscope.generation.sampler"
        for name in ("BatchSampler", "Completion", "SamplingParams")
    },
)
