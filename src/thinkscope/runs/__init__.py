"""Run folders, the run registry, and environment snapshots."""

from thinkscope.runs.folder import Run

__all__ = ["Run"]
