"""Where thinkscope keeps what it caches between runs.

``cache_dir()`` is ``$THINKSCOPE_CACHE`` or ``~/.cache/thinkscope``; under it live
``models/`` (converted checkpoints), ``registry.sqlite`` (the run registry), ``rev/`` (REV
calibrations) and compiled lens kernels. Low-level modules ask here, not each other.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "THINKSCOPE_CACHE"


def cache_dir() -> Path:
    """``$THINKSCOPE_CACHE`` or ``~/.cache/thinkscope`` (not created here)."""
    return Path(os.environ.get(ENV, Path.home() / ".cache" / "thinkscope"))
