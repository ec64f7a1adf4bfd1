"""lm-evaluation-harness's own command line, with the ``thinkscope`` model registered.

lm-eval 0.4 finds models only in its registry (no plugin entry points; ``--include_path``
adds tasks, not models), so the plain ``lm_eval`` command cannot load an out-of-tree model.
:func:`run_harness` registers it, puts :data:`~thinkscope.lmeval.TASKS_DIR` on the task
include path and hands every other argument to lm-eval unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from thinkscope.lmeval import TASKS_DIR


def harness_argv(args: Sequence[str]) -> list[str]:
    """lm-eval arguments: ``--model thinkscope`` unless given, and the bundled tasks' path."""
    argv = list(args)
    if not any(a == "--model" or a.startswith("--model=") for a in argv):
        argv = ["--model", "thinkscope", *argv]
    if not any(a == "--include_path" or a.startswith("--include_path=") for a in argv):
        argv += ["--include_path", str(TASKS_DIR)]
    return argv


def run_harness(args: Sequence[str]) -> None:
    """Run ``lm_eval run ARGS`` in this process with the thinkscope model registered."""
    from lm_eval.__main__ import cli_evaluate

    import thinkscope.lmeval.model  # noqa: F401  (registers "thinkscope")

    saved = sys.argv
    sys.argv = ["lm_eval", "run", *harness_argv(args)]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
