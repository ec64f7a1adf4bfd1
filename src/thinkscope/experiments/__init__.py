"""One-command experiments; each writes its own result folder. Names load lazily, so a
command's options can come from an experiment's config without importing torch."""

from thinkscope.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "EXPERIMENTS": "thinkscope.experiments.catalog",
        "Experiment": "thinkscope.experiments.common",
        "ExperimentConfig": "thinkscope.experiments.common",
    },
)
