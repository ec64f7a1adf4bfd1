"""Selection: spend fewer tokens for the same answers (Cons@n, Think@n, Self-Certainty@n,
DeepConf), every method drawing from one sample pool, with honest token accounting."""

from thinkscope.select.deepconf import (
    deepconf_offline,
    deepconf_online,
    lowest_group_confidence,
    token_confidences,
)
from thinkscope.select.pool import Generation, Pool, cons_at_n, pool_mismatches
from thinkscope.select.think import (
    PrefixDTR,
    PrefixScore,
    PrefixSelfCertainty,
    PrefixSettlingDepth,
    kept_count,
    think_at_n,
    unembed_flops,
)
from thinkscope.select.vote import top_k, vote

__all__ = [
    "Generation",
    "Pool",
    "PrefixDTR",
    "PrefixScore",
    "PrefixSelfCertainty",
    "PrefixSettlingDepth",
    "cons_at_n",
    "deepconf_offline",
    "deepconf_online",
    "kept_count",
    "lowest_group_confidence",
    "pool_mismatches",
    "think_at_n",
    "token_confidences",
    "top_k",
    "unembed_flops",
    "vote",
]
