"""The figure style every thinkscope figure shares: the Okabe-Ito colours (colour-blind
safe) for correct, wrong and neutral, and the matplotlib rc settings."""

CORRECT, WRONG, NEUTRAL = "#0072B2", "#D55E00", "#8c8c8c"  # Okabe-Ito: colour-blind safe
STYLE = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "savefig.dpi": 130,
}
