"""Argument validation shared by the public functions: clear errors that name the argument."""

from __future__ import annotations

import numbers

import numpy as np
import torch


def as_array(value, name: str) -> np.ndarray:
    """Numpy view of an array-like or tensor; rejects strings, None and scalars."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if value is None or isinstance(value, (str, bytes)) or np.isscalar(value):
        raise TypeError(f"{name} must be an array or tensor, got {type(value).__name__}")
    return np.asarray(value)


def as_embeddings(value, name: str) -> np.ndarray:
    """Finite 2-D float array (n, d) with n >= 1; float64 kept, everything else float32."""
    array = as_array(value, name)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_points, n_features), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if array.dtype != np.float64:
        array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def as_labels(value, name: str, *, n_classes=None, length=None, length_name=None) -> np.ndarray:
    """1-D int64 labels in ``[0, n_classes)``, optionally of a given length."""
    array = as_array(value, name)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} entries but {length_name} has {length} rows")
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "n_classes")
    if array.min() < 0:
        raise ValueError(f"{name} must be non-negative class indices, found {array.min()}")
    if n_classes is not None and array.max() >= n_classes:
        raise ValueError(f"{name} contains class {array.max()} but n_classes={n_classes}")
    return array


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_k(k, n_reference: int, leave_one_out: bool, name: str = "k") -> int:
    """``1 <= k < n_reference``: with leave-one-out only ``n_reference - 1`` candidates remain."""
    k = check_positive_int(k, name)
    if k >= n_reference:
        what = "leave-one-out leaves n - 1" if leave_one_out else "the reference set has"
        raise ValueError(
            f"{name}={k} is too large: {what} {n_reference - 1 if leave_one_out else n_reference} "
            f"points; {name} must be at most {n_reference - 1}"
        )
    return k
