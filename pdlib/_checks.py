"""Argument validation for the public functions: one place, clear errors that name the argument."""

from __future__ import annotations

import numbers

import numpy as np
import torch


def default_device() -> torch.device:
    """CUDA when torch sees a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def as_classes(
    value, name: str, ndim: int = 1, *, n_classes: int | None = None, allow_missing: bool = False
) -> np.ndarray:
    """Non-empty int64 array of class indices with ``ndim`` dimensions, in ``[0, n_classes)``.

    Integral floats (``1.0``) are accepted; ``allow_missing`` also accepts -1 ("no class").
    """
    array = as_array(value, name)
    if array.ndim != ndim:
        shape = {1: "(n,)", 2: "(r, n)"}.get(ndim, f"{ndim}-D")
        raise ValueError(f"{name} must be {ndim}-D {shape}, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    lowest = -1 if allow_missing else 0
    if array.min() < lowest:
        what = "class indices or -1" if allow_missing else "non-negative class indices"
        raise ValueError(f"{name} must be {what}, found {array.min()}")
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "n_classes")
        if array.max() >= n_classes:
            raise ValueError(f"{name} contains class {array.max()} but n_classes={n_classes}")
    return array


def as_labels(value, name: str, *, n_classes=None, length=None, length_name=None) -> np.ndarray:
    """1-D int64 labels in ``[0, n_classes)``, optionally of a given length."""
    array = as_classes(value, name, 1, n_classes=n_classes)
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} entries but {length_name} has {length} rows")
    return array


def as_mask(value, name: str, shape: tuple, shape_name: str) -> np.ndarray:
    """Boolean array of exactly ``shape`` (that of ``shape_name``)."""
    array = as_array(value, name)
    if array.dtype != bool:
        raise TypeError(f"{name} must be boolean, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape} but {shape_name} has shape {shape}")
    return array


def as_numbers(value, name: str, ndim: int | None = None, *, finite: bool = False) -> np.ndarray:
    """Non-empty float64 array (with ``ndim`` dimensions when given)."""
    array = as_array(value, name)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    array = array.astype(np.float64, copy=False)
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_fraction(value, name: str, *, closed: bool) -> float:
    """A number in [0, 1] (``closed``) or (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    inside = 0 <= value <= 1 if closed else 0 < value < 1
    if not inside:
        raise ValueError(f"{name} must be in {'[0, 1]' if closed else '(0, 1)'}, got {value}")
    return float(value)


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


def as_input_batch(inputs, name: str = "inputs") -> torch.Tensor:
    """``inputs`` as a non-empty floating-point tensor batch (n, ...)."""
    inputs = torch.as_tensor(inputs)
    if inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty batch (n, ...), got shape {tuple(inputs.shape)}"
        )
    if not inputs.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {inputs.dtype}")
    return inputs
