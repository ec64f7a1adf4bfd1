"""``thinkscope profile``: a model's thinking card, and the difference between two.

The profile orchestrates the library's stages (generation, scoring, analysis, calibration,
REV, interp, selection) under one fixed, versioned protocol
(:mod:`~thinkscope.profile.protocol`), section by section
(:mod:`~thinkscope.profile.sections`), into ``profile.json`` and ``profile.html``.
"""

from thinkscope.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "Protocol": "thinkscope.profile.protocol",
        "run_profile": "thinkscope.profile.runner",
        "load_card": "thinkscope.profile.card",
        "diff_profiles": "thinkscope.profile.diff",
    },
)
