"""The analysis as a person reads it in a terminal: rich tables that fit 80 columns."""

from __future__ import annotations

import math

import pandas as pd
from rich import box
from rich.markup import escape
from rich.table import Table


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number for a table cell; NaN is an em dash."""
    if value is None or math.isnan(value):
        return "—"
    return format(value, spec)


def metric_rich_table(metrics: pd.DataFrame) -> Table:
    """The table as printed (80 columns; NaN counts are printed as notes below it)."""
    table = Table(
        title="How well each metric predicts correctness",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        caption="r bin: binned r; r part: partial r (length, ppl)",
    )
    table.add_column("metric", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("AUROC [95% CI]", no_wrap=True)
    for name in ("r bin", "r part", "p", "DeLong"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in metrics.itertuples():
        defined = not math.isnan(row.auroc)
        ci = f" [{fmt(row.auroc_lo, '.2f')},{fmt(row.auroc_hi, '.2f')}]" if defined else ""
        table.add_row(
            escape(row.metric),
            str(row.n),
            fmt(row.auroc) + ci,
            fmt(row.r_binned),
            fmt(row.partial_r),
            fmt(row.partial_p, ".2g"),
            fmt(row.delong_p_vs_dtr, ".2g"),
        )
    return table
