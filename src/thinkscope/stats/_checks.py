"""Input coercion shared by the stats modules."""

from collections.abc import Iterable

import numpy as np
import pandas as pd

from thinkscope.core.errors import UserError


def as_float(values, name: str) -> np.ndarray:
    """A 1-D float array (NaN kept)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def as_binary(values, name: str) -> np.ndarray:
    """A 1-D bool array from bools or 0/1 numbers; anything else (NaN included) is an error."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    try:
        num = arr.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold 0/1 or True/False values") from None
    if not np.all((num == 0) | (num == 1)):
        raise ValueError(f"{name} must hold only 0/1 or True/False values (no NaN)")
    return num == 1


def same_length(**arrays: np.ndarray) -> None:
    """Raise unless all arrays have the same length."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"length mismatch: {lengths}")


def require_columns(df: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise a UserError naming the columns that ``df`` lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"missing column(s) {missing}; available: {sorted(map(str, df.columns))}")
