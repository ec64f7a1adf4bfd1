"""The score stage: one HF forward pass per trace through the lens, metric columns added to
the run folder, resumably (:mod:`~thinkscope.scoring.stage`); its Ray worker
(:mod:`~thinkscope.scoring.ray`). Names load lazily."""

from thinkscope.core.lazy import lazy_exports

DEFAULT_METRICS = "dtr,length,confidence"
"""What ``thinkscope score`` measures unless told otherwise."""

__getattr__, _LAZY = lazy_exports(
    __name__,
    {
        name: "thinkscope.scoring.stage"
        for name in ("check_tokenizer", "score", "score_batch", "score_frame", "score_run")
    },
)
__all__ = ["DEFAULT_METRICS", *_LAZY]
