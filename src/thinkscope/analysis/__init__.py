"""Relate scored thinking metrics to correctness, draw the figures, and build the static
HTML report with its token-level trace viewer (``thinkscope analyze`` / ``report``)."""

from thinkscope.analysis.load import ScoredRun, TokenMetrics, load_scored, load_token_metrics
from thinkscope.analysis.report import Report, build_report
from thinkscope.analysis.run import Analysis, analyze_run
from thinkscope.analysis.table import metric_table, quintile_table

__all__ = [
    "Analysis",
    "Report",
    "ScoredRun",
    "TokenMetrics",
    "analyze_run",
    "build_report",
    "load_scored",
    "load_token_metrics",
    "metric_table",
    "quintile_table",
]
