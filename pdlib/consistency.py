"""Ensemble metrics of the paper's Section 3 (pure numpy on arrays of predictions).

``r`` models were each trained on a random 90 % of ``n`` points. ``predictions[m, i]``
is model ``m``'s class for point ``i`` and ``held_out[m, i]`` is True when point ``i``
was in model ``m``'s validation split. A point that no model held out gets NaN (or
-1 for a class).
"""

from __future__ import annotations

import numpy as np

from pdlib._checks import as_array, as_labels, check_positive_int
from pdlib.depth import prediction_depth

__all__ = [
    "consistency_score",
    "consensus_class",
    "consensus_consistency",
    "iteration_learned",
    "rescale_iteration",
    "split_means",
]


def _check_ensemble(predictions, held_out) -> tuple[np.ndarray, np.ndarray]:
    predictions = as_array(predictions, "predictions")
    held_out = as_array(held_out, "held_out")
    if predictions.ndim != 2 or predictions.size == 0:
        raise ValueError(f"predictions must be a non-empty 2-D array (r, n), got shape {predictions.shape}")
    if predictions.dtype.kind not in "iu":
        raise TypeError(f"predictions must hold integer classes, got dtype {predictions.dtype}")
    if held_out.dtype != bool:
        raise TypeError(f"held_out must be boolean, got dtype {held_out.dtype}")
    if held_out.shape != predictions.shape:
        raise ValueError(f"held_out has shape {held_out.shape} but predictions has {predictions.shape}")
    return predictions.astype(np.int64), held_out


def _fraction_held_out_predicting(predictions, held_out, target) -> np.ndarray:
    hits = ((predictions == target[None, :]) & held_out).sum(axis=0)
    count = held_out.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, hits / np.maximum(count, 1), np.nan)


def consistency_score(predictions, held_out, labels) -> np.ndarray:
    """Eq. 1: the fraction of the models that held a point out which predict its label.

    Parameters
    ----------
    predictions : array-like of int, shape (r, n)
    held_out : array-like of bool, shape (r, n)
    labels : array-like of int, shape (n,)
        Ground truth.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN where no model held the point out.

    Examples
    --------
    >>> consistency_score([[0, 1], [1, 1]], [[True, False], [True, True]], [0, 1]).tolist()
    [0.5, 1.0]
    """
    predictions, held_out = _check_ensemble(predictions, held_out)
    labels = as_labels(labels, "labels", length=predictions.shape[1], length_name="predictions' points")
    return _fraction_held_out_predicting(predictions, held_out, labels)


def held_out_votes(predictions, held_out, n_classes: int) -> np.ndarray:
    """Per point, how many held-out models predict each class: shape (n, n_classes), int64."""
    predictions, held_out = _check_ensemble(predictions, held_out)
    n_classes = check_positive_int(n_classes, "n_classes")
    if predictions.min() < 0 or predictions.max() >= n_classes:
        raise ValueError(f"predictions must lie in [0, n_classes={n_classes})")
    n = predictions.shape[1]
    flat = (np.arange(n)[None, :] * n_classes + predictions)[held_out]
    return np.bincount(flat, minlength=n * n_classes).reshape(n, n_classes)


def consensus_from_votes(votes, labels) -> np.ndarray:
    """Majority class from vote counts (n, n_classes): ties to the label, then to the smallest index.

    Rows without votes give -1.
    """
    votes = as_array(votes, "votes")
    labels = as_labels(labels, "labels", length=votes.shape[0], length_name="votes")
    tied = votes == votes.max(axis=1, keepdims=True)
    label_tied = tied[np.arange(len(labels)), labels]
    consensus = np.where(label_tied, labels, tied.argmax(axis=1))
    return np.where(votes.sum(axis=1) > 0, consensus, -1).astype(np.int64)


def consensus_class(predictions, held_out, labels, n_classes: int) -> np.ndarray:
    """The majority vote of the models that held a point out.

    Ties go to the ground-truth class when it is among the tied classes, else to the
    smallest class index (the paper's Fig. 7 caption).

    Parameters
    ----------
    predictions : array-like of int, shape (r, n)
    held_out : array-like of bool, shape (r, n)
    labels : array-like of int, shape (n,)
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n,)
        -1 where no model held the point out.

    Examples
    --------
    >>> consensus_class([[2, 0], [1, 0]], [[True, True], [True, True]], [1, 2], 3).tolist()
    [1, 0]
    """
    labels = as_labels(labels, "labels", n_classes=n_classes, length=np.shape(predictions)[-1],
                       length_name="predictions' points")
    return consensus_from_votes(held_out_votes(predictions, held_out, n_classes), labels)


def consensus_consistency(predictions, held_out, consensus) -> np.ndarray:
    """Eq. 2: the fraction of the models that held a point out which predict its consensus class.

    Parameters
    ----------
    predictions : array-like of int, shape (r, n)
    held_out : array-like of bool, shape (r, n)
    consensus : array-like of int, shape (n,)
        From :func:`consensus_class` (-1 for points never held out).

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN where no model held the point out.
    """
    predictions, held_out = _check_ensemble(predictions, held_out)
    consensus = as_array(consensus, "consensus").astype(np.int64)
    if consensus.shape != (predictions.shape[1],):
        raise ValueError(f"consensus must have shape ({predictions.shape[1]},), got {consensus.shape}")
    score = _fraction_held_out_predicting(predictions, held_out, consensus)
    return np.where(consensus >= 0, score, np.nan)


def iteration_learned(prediction_history) -> np.ndarray:
    """The earliest checkpoint from which every later prediction equals the final one.

    The same rule as prediction depth, applied over training time instead of depth.

    Parameters
    ----------
    prediction_history : array-like of int, shape (T + 1, n)
        Row 0 at initialisation, row T at the end of training.

    Returns
    -------
    ndarray of int64, shape (n,)
        Checkpoint index in ``0 .. T``.

    Examples
    --------
    >>> iteration_learned([[0, 1], [1, 1], [0, 1], [0, 1]]).tolist()
    [2, 0]
    """
    history = as_array(prediction_history, "prediction_history")
    if history.ndim != 2 or history.size == 0:
        raise ValueError(f"prediction_history must be a non-empty 2-D array (T + 1, n), got shape {history.shape}")
    return prediction_depth(history, history[-1])


def rescale_iteration(iteration, quantile: float = 0.95) -> np.ndarray:
    """Iteration learned scaled so that initialisation is 0 and the ``quantile`` is 1.

    Parameters
    ----------
    iteration : array-like of int, shape (n,)
        One model's iteration learned of every point.
    quantile : float
        0.95 in the paper. Points learned later than it exceed 1.

    Returns
    -------
    ndarray of float64, shape (n,)
        All zeros when the quantile is 0 (the model learned almost everything at once).
    """
    iteration = as_array(iteration, "iteration").astype(np.float64)
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    scale = np.quantile(iteration, quantile)
    return iteration / scale if scale > 0 else np.zeros_like(iteration)


def split_means(values, held_out) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the mean of ``values`` over held-out and over training appearances.

    Parameters
    ----------
    values : array-like of float, shape (r, n)
        E.g. each model's prediction depth of each point.
    held_out : array-like of bool, shape (r, n)

    Returns
    -------
    mean_held_out, mean_trained : ndarray of float64, shape (n,)
        PD_val and PD_train when ``values`` is prediction depth; NaN without appearances.
    """
    values = as_array(values, "values").astype(np.float64)
    held_out = as_array(held_out, "held_out")
    if held_out.dtype != bool:
        raise TypeError(f"held_out must be boolean, got dtype {held_out.dtype}")
    if values.shape != held_out.shape or values.ndim != 2:
        raise ValueError(f"values {values.shape} and held_out {held_out.shape} must have the same 2-D shape")
    out = []
    for mask in (held_out, ~held_out):
        count = mask.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(count > 0, (values * mask).sum(axis=0) / np.maximum(count, 1), np.nan))
    return out[0], out[1]
