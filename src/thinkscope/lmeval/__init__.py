"""lm-evaluation-harness integration: the ``thinkscope`` model and bundled offline tasks.

Importing :mod:`thinkscope.lmeval.model` registers the model; :data:`TASKS_DIR` holds the
task YAMLs (pass it as lm-eval's ``--include_path``; ``thinkscope eval`` does both).
"""

from pathlib import Path

TASKS_DIR = Path(__file__).parent / "tasks"
