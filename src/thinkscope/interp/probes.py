"""Per-layer probes under stratified k-fold CV: scikit-learn logistic regression, or a small
MLP (``MLPClassifier``, one hidden layer of 64, seeded) for what a line cannot separate.

With group ids (the problem each trace answers) the folds are grouped
(``StratifiedGroupKFold``): all samples of a question land in the same fold, so a probe is never
tested on a question it was trained on. Every input gets an out-of-fold prediction; accuracy
(Wilson CI, statsmodels) and, for two classes, AUROC (bootstrap CI,
:func:`thinkscope.stats.auroc`) are computed on those.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from statsmodels.stats.proportion import proportion_confint

from thinkscope.core.errors import UserError
from thinkscope.stats import auroc

COLUMNS = ["layer", "n", "accuracy", "acc_lo", "acc_hi", "auroc", "auroc_lo", "auroc_hi"]
PROBES = ("logistic", "mlp")


def _check(rows: np.ndarray, labels: np.ndarray, folds: int, groups: np.ndarray | None) -> None:
    if rows.ndim != 3 or len(rows) != len(labels):
        raise UserError(
            f"probes need rows [N, layers, d] and N labels: {rows.shape}, {len(labels)}"
        )
    check_labels(labels, folds, groups)


def check_labels(labels: np.ndarray, folds: int, groups: np.ndarray | None = None) -> None:
    """Raise unless ``labels`` (and their ``groups``) can be split into ``folds`` CV folds with
    both classes: what a probe needs, checked before any activation is collected."""
    if folds < 2:
        raise UserError(f"--folds must be >= 2, got {folds}")
    if groups is not None:
        if len(groups) != len(labels):
            raise UserError(f"probes need one group id per input: {len(groups)} for {len(labels)}")
        if len(np.unique(groups)) < folds:
            raise UserError(
                f"{len(np.unique(groups))} problems are fewer than the {folds} CV folds; "
                "use more problems or fewer folds"
            )
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise UserError("probes need at least two label values (e.g. correct and wrong traces)")
    if counts.min() < folds:
        raise UserError(
            f"the rarest label has {counts.min()} inputs, fewer than the {folds} CV folds; "
            "collect more inputs or use fewer folds"
        )


def cv_folds(folds: int, seed: int, grouped: bool) -> StratifiedKFold | StratifiedGroupKFold:
    """The probes' shuffled stratified splitter; grouped when group ids are given."""
    kind = StratifiedGroupKFold if grouped else StratifiedKFold
    return kind(n_splits=folds, shuffle=True, random_state=seed)


def probe_model(probe: str, C: float = 1.0, seed: int = 0):
    """An unfitted probe on standardised inputs: ``logistic`` (L2 penalty ``1/C``) or ``mlp``
    (64 ReLU units, L2 penalty ``1/C`` per sample, Adam, seeded by ``seed``)."""
    if probe == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    if probe == "mlp":
        mlp = MLPClassifier((64,), alpha=1 / C, max_iter=2000, random_state=seed)
        return make_pipeline(StandardScaler(), mlp)
    raise UserError(f"--probe must be one of {', '.join(PROBES)}, got {probe!r}")


def probe_layers(
    rows: np.ndarray,
    labels: Sequence,
    layers: Sequence[int],
    folds: int = 5,
    C: float = 1.0,
    seed: int = 0,
    n_resamples: int = 2000,
    groups: Sequence | None = None,
    probe: str = "logistic",
) -> pd.DataFrame:
    """One row per layer: out-of-fold accuracy and AUROC of a ``probe`` (:func:`probe_model`)
    on ``rows[:, k]`` ``[N, d]`` predicting ``labels`` ``[N]``, with 95% CIs. ``groups``
    ``[N]`` (e.g. problem ids): inputs sharing an id are never split between training and
    test folds."""
    probe_model(probe)  # an unknown probe fails before any fitting
    rows, labels = np.asarray(rows), np.asarray(labels)
    groups = None if groups is None else np.asarray(groups)
    _check(rows, labels, folds, groups)
    binary = len(np.unique(labels)) == 2
    splitter = cv_folds(folds, seed, grouped=groups is not None)
    out = []
    for k, layer in enumerate(layers):
        model = probe_model(probe, C, seed)
        proba = cross_val_predict(
            model, rows[:, k], labels, groups=groups, cv=splitter, method="predict_proba"
        )
        classes = np.unique(labels)
        hits = int((classes[proba.argmax(1)] == labels).sum())
        lo, hi = proportion_confint(hits, len(labels), method="wilson")
        result = {"layer": layer, "n": len(labels), "accuracy": hits / len(labels)}
        result.update(acc_lo=lo, acc_hi=hi, auroc=np.nan, auroc_lo=np.nan, auroc_hi=np.nan)
        if binary:
            a = auroc(proba[:, 1], labels == classes[1], n_resamples=n_resamples, seed=seed)
            result.update(auroc=a.auroc, auroc_lo=a.lo, auroc_hi=a.hi)
        out.append(result)
    return pd.DataFrame(out, columns=COLUMNS)


def probe_figure(table: pd.DataFrame, title: str) -> Figure:
    """Accuracy and AUROC by layer with their CIs."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for name, colour in (("accuracy", "#0072B2"), ("auroc", "#D55E00")):
        lo, hi = ("acc_lo", "acc_hi") if name == "accuracy" else ("auroc_lo", "auroc_hi")
        if table[name].notna().any():
            ax.plot(table["layer"], table[name], marker="o", color=colour, label=name)
            ax.fill_between(table["layer"], table[lo], table[hi], color=colour, alpha=0.2)
    ax.axhline(0.5, color="#8c8c8c", lw=0.8, ls="--")
    ax.set_xlabel("layer")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
