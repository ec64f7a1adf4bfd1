"""The card's sections, in page order. Each module declares ``SECTION`` (a
:class:`~thinkscope.profile.section.Section`) and ``SIZES`` (its sizes per budget)."""

from thinkscope.profile.sections import (
    accuracy,
    calibration,
    control,
    cost,
    depth,
    predictors,
    representations,
    selection,
)

_MODULES = (accuracy, depth, predictors, calibration, representations, control, selection, cost)
SECTIONS = [module.SECTION for module in _MODULES]
SIZES = {module.SECTION.name: module.SIZES for module in _MODULES}
