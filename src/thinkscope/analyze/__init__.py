"""Relate scored thinking metrics to correctness: ``thinkscope analyze DIR``."""

from thinkscope.analyze.command import analyze_command
from thinkscope.analyze.load import ScoredRun, TokenMetrics, load_scored, load_token_metrics
from thinkscope.analyze.run import Analysis, analyze_run
from thinkscope.analyze.table import metric_table, quintile_table

__all__ = [
    "Analysis",
    "ScoredRun",
    "TokenMetrics",
    "analyze_command",
    "analyze_run",
    "load_scored",
    "load_token_metrics",
    "metric_table",
    "quintile_table",
]
