"""The statistics of the REV evaluation (seed 001) for one scored run.

- per metric: AUROC for correctness with a bootstrap CI (:func:`thinkscope.stats.auroc`);
- logistic models on standardised features, ``base`` = (length, perplexity), ``+rev``,
  ``+rev+dtr``: out-of-fold probabilities from stratified k-fold cross-validation
  (scikit-learn), their AUROC with a bootstrap CI, and delta-AUC against ``base`` with a paired
  DeLong test on the same out-of-fold predictions;
- partial r of REV with correctness controlling for length and perplexity;
- Cohen's d (pooled standard deviation) of each metric between reasoning traces and the control
  set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from thinkscope.stats import auroc, delong_test, partial_correlation

BASELINE = ("length", "perplexity")
MODELS = {"base": BASELINE, "+rev": (*BASELINE, "rev"), "+rev+dtr": (*BASELINE, "rev", "dtr")}


def metric_aurocs(
    frame: pd.DataFrame, columns: Sequence[str], resamples: int, seed: int
) -> pd.DataFrame:
    """One row per column: AUROC for ``frame.correct`` with its bootstrap CI and NaN count."""
    y = frame["correct"].astype(bool).to_numpy()
    out = []
    for column in columns:
        result = auroc(frame[column].astype(float).to_numpy(), y, resamples, seed=seed)
        out.append(
            {
                "metric": column,
                "auroc": result.auroc,
                "lo": result.lo,
                "hi": result.hi,
                "n": result.n,
                "n_nan": result.n_nan,
            }
        )
    return pd.DataFrame(out)


def cv_probabilities(x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold P(correct) ``[N]`` of a standardised logistic regression; NaN if a class has
    fewer than 2 samples (no stratified split exists)."""
    k = min(folds, int(y.sum()), int((~y).sum()))
    if k < 2:
        return np.full(len(y), np.nan)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, y, cv=split, method="predict_proba")[:, 1]


def model_comparison(
    frame: pd.DataFrame, folds: int, resamples: int, seed: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Cross-validated AUROC of each logistic model in :data:`MODELS` (rows with a NaN feature
    dropped for all models alike), delta-AUC against ``base`` and its DeLong p.
    Also returns each model's out-of-fold probabilities."""
    features = sorted({c for cols in MODELS.values() for c in cols if c in frame})
    keep = frame[features].notna().all(axis=1).to_numpy()
    data, y = frame[keep], frame["correct"].astype(bool).to_numpy()[keep]
    probs = {
        name: cv_probabilities(data[list(cols)].to_numpy(float), y, folds, seed)
        for name, cols in MODELS.items()
        if all(c in data for c in cols)
    }
    rows = []
    for name, p in probs.items():
        result = auroc(p, y, resamples, seed=seed)
        row = {"model": name, "cv_auroc": result.auroc, "lo": result.lo, "hi": result.hi}
        row["n"], row["delta_auc"], row["delong_p"] = int(keep.sum()), 0.0, math.nan
        if name != "base":
            test = delong_test(p, probs["base"], y)
            row["delta_auc"], row["delong_p"] = test.diff, test.p
        rows.append(row)
    return pd.DataFrame(rows), probs


def rev_partial(frame: pd.DataFrame, column: str = "rev") -> tuple[float, float]:
    """Partial r of ``column`` with correctness given length and perplexity, and its p."""
    result = partial_correlation(frame, column, "correct", BASELINE)
    return result.r, result.p


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / pooled sd (ddof 1); NaNs dropped; NaN when undefined."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    return float((a.mean() - b.mean()) / math.sqrt(pooled)) if pooled > 0 else math.nan


def separation(reasoning: pd.DataFrame, control: pd.DataFrame, columns: Sequence[str]) -> dict:
    """Cohen's d reasoning-versus-control for each of ``columns``."""
    return {c: cohens_d(reasoning[c].to_numpy(), control[c].to_numpy()) for c in columns}
