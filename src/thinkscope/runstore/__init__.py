"""Run folders, the run registry, and environment snapshots."""

from thinkscope.runstore.folder import Run

__all__ = ["Run"]
