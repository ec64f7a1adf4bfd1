"""The analysis as a person reads it in a terminal: rich tables that fit 80 columns."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table

from thinkscope.core.tables import Col, fit_table

#: The metric table's columns: a metric's name is never cut; where the names are long, the
#: DeLong p-value, then the binned r, are left out (named under the table).
METRIC_COLUMNS = (
    Col("metric", role="name"),
    Col("n"),
    Col("auroc", "AUROC [95% CI]", role="name"),
    Col("r_binned", "r bin", drop=1),
    Col("partial_r", "r part"),
    Col("partial_p", "p"),
    Col("delong_p_vs_dtr", "DeLong", drop=2),
)


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number for a table cell; NaN is an em dash."""
    if value is None or math.isnan(value):
        return "—"
    return format(value, spec)


def metric_rich_table(metrics: pd.DataFrame, width: int = 80) -> Table:
    """The table as printed in ``width`` columns (NaN counts are printed as notes below it)."""
    rows = []
    for row in metrics.itertuples():
        defined = not math.isnan(row.auroc)
        ci = f" [{fmt(row.auroc_lo, '.2f')},{fmt(row.auroc_hi, '.2f')}]" if defined else ""
        rows.append(
            {
                "metric": row.metric,
                "n": str(row.n),
                "auroc": fmt(row.auroc) + ci,
                "r_binned": fmt(row.r_binned),
                "partial_r": fmt(row.partial_r),
                "partial_p": fmt(row.partial_p, ".2g"),
                "delong_p_vs_dtr": fmt(row.delong_p_vs_dtr, ".2g"),
            }
        )
    return fit_table(
        rows,
        METRIC_COLUMNS,
        width,
        title="How well each metric predicts correctness",
        caption="r bin: binned r; r part: partial r (length, ppl)",
    )
