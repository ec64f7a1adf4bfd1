"""Figures, the static HTML report and its token-level trace viewer: ``thinkscope report DIR``."""

from thinkscope.report.command import report_command
from thinkscope.report.page import Report, build_report

__all__ = ["Report", "build_report", "report_command"]
