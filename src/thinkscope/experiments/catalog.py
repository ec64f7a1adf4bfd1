"""The DTR experiments by name (``thinkscope experiment NAME``)."""

from thinkscope.experiments.contrast import contrast
from thinkscope.experiments.correlation import dtr_accuracy, length_vs_dtr
from thinkscope.experiments.sweeps import cot_vs_direct, temperature_sweep, threshold_sweep
from thinkscope.experiments.tokens import jsd_diagnostic, token_types

EXPERIMENTS = {
    "threshold-sweep": threshold_sweep,
    "temperature-sweep": temperature_sweep,
    "cot-vs-direct": cot_vs_direct,
    "token-types": token_types,
    "length-vs-dtr": length_vs_dtr,
    "jsd-diagnostic": jsd_diagnostic,
    "dtr-accuracy": dtr_accuracy,
    "contrast": contrast,
}
