"""Package names that import their module on first use (PEP 562), so that reading a
package's settings or the CLI's help does not pay for torch.

>>> __getattr__, __all__ = lazy_exports(__name__, {"LM": "thinkscope.models.lm"})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` resolving each name in ``exports`` (name -> module) on first
    access, and the sorted ``__all__``."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(exports[name]), name)

    return __getattr__, sorted(exports)
