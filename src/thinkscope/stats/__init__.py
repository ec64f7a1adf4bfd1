"""Statistics relating per-sample thinking metrics to answer correctness."""

from thinkscope.stats.auroc import (
    AurocResult,
    BootstrapCI,
    DeLongResult,
    auroc,
    bootstrap_auroc_ci,
    bootstrap_indices,
    delong_test,
)
from thinkscope.stats.calibration import CalibrationGrid, calibration_grid, fit_power_law
from thinkscope.stats.clustered import cluster_bootstrap, percentile_ci
from thinkscope.stats.correlation import (
    SKIP_REASONS,
    BinnedCorrelation,
    accuracy_by_quantile,
    binned_correlation,
)
from thinkscope.stats.partial import PartialCorrelation, partial_correlation
from thinkscope.stats.passk import mean_pass_at_k, pass_at_k

__all__ = [
    "SKIP_REASONS",
    "AurocResult",
    "BinnedCorrelation",
    "BootstrapCI",
    "CalibrationGrid",
    "DeLongResult",
    "PartialCorrelation",
    "accuracy_by_quantile",
    "auroc",
    "binned_correlation",
    "bootstrap_auroc_ci",
    "bootstrap_indices",
    "calibration_grid",
    "cluster_bootstrap",
    "delong_test",
    "fit_power_law",
    "mean_pass_at_k",
    "partial_correlation",
    "pass_at_k",
    "percentile_ci",
]
