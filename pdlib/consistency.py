"""Ensemble metrics of the paper's Section 3 (pure numpy on arrays of predictions).

``r`` models were each trained on a random 90 % of ``n`` points (the 90:10 protocol).
``predictions[m, i]`` is model ``m``'s class for point ``i`` (every point, whether it was in
that model's training or validation split) and ``held_out[m, i]`` is True when point ``i``
was in model ``m``'s validation split. A point that no model held out gets NaN (or -1 for
a class).

The batch functions take the whole ``(r, n)`` arrays. :class:`EnsembleAccumulator` gives
the same numbers one model at a time, in memory ``O(n * n_classes)``, for ensembles of
hundreds of models.
"""

from __future__ import annotations

import numbers

import numpy as np

from pdlib._checks import as_array, as_labels, check_positive_int
from pdlib.depth import prediction_depth

__all__ = [
    "EnsembleAccumulator",
    "consensus_class",
    "consensus_consistency",
    "consensus_from_votes",
    "consistency_score",
    "held_out_votes",
    "iteration_learned",
    "rescale_iteration",
    "split_means",
]


# --- argument checks --------------------------------------------------------------------------

def _as_classes(value, name: str, ndim: int, n_classes: int | None = None) -> np.ndarray:
    """Non-empty int64 array of class indices with ``ndim`` dimensions, in ``[0, n_classes)``."""
    array = as_array(value, name)
    if array.ndim != ndim:
        shape = "(r, n)" if ndim == 2 else "(n,)"
        raise ValueError(f"{name} must be {ndim}-D {shape}, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64, copy=False)
    if array.min() < 0:
        raise ValueError(f"{name} must be non-negative class indices, found {array.min()}")
    if n_classes is not None and array.max() >= n_classes:
        raise ValueError(f"{name} contains class {array.max()} but n_classes={n_classes}")
    return array


def _as_mask(value, name: str, shape: tuple, shape_name: str) -> np.ndarray:
    """Boolean array of exactly ``shape`` (that of ``shape_name``)."""
    array = as_array(value, name)
    if array.dtype != bool:
        raise TypeError(f"{name} must be boolean (True = in the model's validation split), got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape} but {shape_name} has shape {shape}")
    return array


def _as_numbers(value, name: str, ndim: int) -> np.ndarray:
    """Non-empty float64 array with ``ndim`` dimensions."""
    array = as_array(value, name)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim != ndim:
        shape = "(r, n)" if ndim == 2 else "(n,)"
        raise ValueError(f"{name} must be {ndim}-D {shape}, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: shape {array.shape}")
    return array.astype(np.float64, copy=False)


def _check_labels(labels, n: int, n_classes: int | None = None, name: str = "labels") -> np.ndarray:
    labels = as_labels(labels, name, n_classes=n_classes)
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} entries but there are {n} points")
    return labels


def _check_ensemble(predictions, held_out, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    predictions = _as_classes(predictions, "predictions", 2, n_classes)
    held_out = _as_mask(held_out, "held_out", predictions.shape, "predictions")
    return predictions, held_out


def _ratio(numerator, count) -> np.ndarray:
    """``numerator / count`` as float64, NaN where ``count`` is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, numerator / np.maximum(count, 1), np.nan)


# --- Eq. 1, the consensus class and Eq. 2 -----------------------------------------------------

def consistency_score(predictions, held_out, labels) -> np.ndarray:
    """Eq. 1: the fraction of the models that held a point out which predict its label.

    Parameters
    ----------
    predictions : array-like of int, shape (r, n)
        Class predicted by each model for each point.
    held_out : array-like of bool, shape (r, n)
        True where the point was in the model's validation split.
    labels : array-like of int, shape (n,)
        Ground truth.

    Returns
    -------
    ndarray of float64, shape (n,)
        Values in [0, 1]; NaN where no model held the point out.

    Examples
    --------
    >>> consistency_score([[0, 1, 2], [1, 1, 2]], [[True, False, False], [True, True, False]],
    ...                   [0, 1, 2]).tolist()
    [0.5, 1.0, nan]
    """
    predictions, held_out = _check_ensemble(predictions, held_out)
    labels = _check_labels(labels, predictions.shape[1])
    hits = ((predictions == labels) & held_out).sum(axis=0)
    return _ratio(hits, held_out.sum(axis=0))


def held_out_votes(predictions, held_out, n_classes: int) -> np.ndarray:
    """How many of the models that held each point out predict each class.

    Parameters
    ----------
    predictions : array-like of int, shape (r, n)
        Values in ``[0, n_classes)``.
    held_out : array-like of bool, shape (r, n)
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n, n_classes)
        Row ``i`` sums to the number of models that held point ``i`` out.

    Examples
    --------
    >>> held_out_votes([[0, 1], [2, 1]], [[True, True], [True, False]], 3).tolist()
    [[1, 0, 1], [0, 1, 0]]
    """
    n_classes = check_positive_int(n_classes, "n_classes")
    predictions, held_out = _check_ensemble(predictions, held_out, n_classes)
    n = predictions.shape[1]
    votes = np.zeros((n, n_classes), dtype=np.int64)
    points = np.arange(n)
    # One model at a time: memory O(n * n_classes), and (point, class) pairs within a model are distinct.
    for row, mask in zip(predictions, held_out):
        votes[points[mask], row[mask]] += 1
    return votes


def consensus_from_votes(votes, labels) -> np.ndarray:
    """The plurality class of each row of vote counts, with the paper's tie rule.

    Ties go to the label when it is among the tied classes, else to the smallest tied index.

    Parameters
    ----------
    votes : array-like of int, shape (n, n_classes)
        Non-negative counts, e.g. from :func:`held_out_votes`.
    labels : array-like of int, shape (n,)
        Ground truth, in ``[0, n_classes)``.

    Returns
    -------
    ndarray of int64, shape (n,)
        -1 for rows without any vote.

    Examples
    --------
    >>> consensus_from_votes([[1, 2, 2], [1, 2, 2], [0, 0, 0]], [2, 0, 1]).tolist()
    [2, 1, -1]
    """
    votes = as_array(votes, "votes")
    if votes.ndim != 2 or votes.size == 0:
        raise ValueError(f"votes must be a non-empty 2-D array (n, n_classes), got shape {votes.shape}")
    if votes.dtype.kind not in "iu":
        raise TypeError(f"votes must hold integer counts, got dtype {votes.dtype}")
    if votes.min() < 0:
        raise ValueError(f"votes must be non-negative counts, found {votes.min()}")
    labels = _check_labels(labels, votes.shape[0], n_classes=votes.shape[1])
    tied = votes == votes.max(axis=1, keepdims=True)
    label_tied = tied[np.arange(len(labels)), labels]
    # argmax of a boolean row is its first True: the smallest tied class
    consensus = np.where(label_tied, labels, tied.argmax(axis=1))
    return np.where(votes.sum(axis=1) > 0, consensus, -1).astype(np.int64)


def consensus_class(predictions, held_out, labels, n_classes: int) -> np.ndarray:
    """The majority vote of the models that held a point out.

    Ties go to the ground-truth class when it is among the tied classes, else to the
    smallest tied class index (the paper's Fig. 7 caption).

    Parameters
    ----------
    predictions : array-like of int, shape (r, n)
        Values in ``[0, n_classes)``.
    held_out : array-like of bool, shape (r, n)
    labels : array-like of int, shape (n,)
        Ground truth, in ``[0, n_classes)``.
    n_classes : int

    Returns
    -------
    ndarray of int64, shape (n,)
        -1 where no model held the point out.

    Examples
    --------
    >>> consensus_class([[2, 0, 1], [1, 2, 1]], [[True, True, False], [True, True, False]],
    ...                 [1, 1, 0], 3).tolist()
    [1, 0, -1]
    """
    votes = held_out_votes(predictions, held_out, n_classes)
    labels = _check_labels(labels, votes.shape[0], n_classes=votes.shape[1])
    return consensus_from_votes(votes, labels)


def consensus_consistency(predictions, held_out, consensus) -> np.ndarray:
    """Eq. 2: the fraction of the models that held a point out which predict its consensus class.

    Parameters
    ----------
    predictions : array-like of int, shape (r, n)
    held_out : array-like of bool, shape (r, n)
    consensus : array-like of int, shape (n,)
        From :func:`consensus_class`; -1 marks a point without a consensus.

    Returns
    -------
    ndarray of float64, shape (n,)
        Values in [0, 1]; NaN where no model held the point out or ``consensus`` is -1.

    Examples
    --------
    >>> consensus_consistency([[2, 0, 1], [1, 2, 1]], [[True, True, False], [True, True, False]],
    ...                       [1, 0, -1]).tolist()
    [0.5, 0.5, nan]
    """
    predictions, held_out = _check_ensemble(predictions, held_out)
    consensus = as_array(consensus, "consensus")
    if consensus.ndim != 1 or consensus.shape[0] != predictions.shape[1]:
        raise ValueError(f"consensus must have shape ({predictions.shape[1]},), got {consensus.shape}")
    if consensus.dtype.kind not in "iu":
        raise TypeError(f"consensus must hold integer class indices, got dtype {consensus.dtype}")
    consensus = consensus.astype(np.int64, copy=False)
    if consensus.min() < -1:
        raise ValueError(f"consensus must be class indices or -1, found {consensus.min()}")
    hits = ((predictions == consensus) & held_out).sum(axis=0)
    return np.where(consensus >= 0, _ratio(hits, held_out.sum(axis=0)), np.nan)


# --- PD_val and PD_train ----------------------------------------------------------------------

def split_means(values, held_out) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the mean of ``values`` over the models that held it out and over those that trained on it.

    Parameters
    ----------
    values : array-like of float, shape (r, n)
        E.g. each model's prediction depth of each point. A NaN only affects the means it
        enters.
    held_out : array-like of bool, shape (r, n)

    Returns
    -------
    mean_held_out, mean_trained : ndarray of float64, shape (n,)
        PD_val and PD_train when ``values`` is prediction depth; NaN where the point has no
        model of that kind.

    Examples
    --------
    >>> val, train = split_means([[1, 2], [3, 4], [5, 6]],
    ...                          [[True, False], [False, False], [True, False]])
    >>> val.tolist(), train.tolist()
    ([3.0, nan], [3.0, 4.0])
    """
    values = _as_numbers(values, "values", 2)
    held_out = _as_mask(held_out, "held_out", values.shape, "values")
    n_held_out = held_out.sum(axis=0)
    # np.where, not a product with the mask: a NaN must not leak into the other split's mean
    mean_held_out = _ratio(np.where(held_out, values, 0.0).sum(axis=0), n_held_out)
    mean_trained = _ratio(np.where(held_out, 0.0, values).sum(axis=0), held_out.shape[0] - n_held_out)
    return mean_held_out, mean_trained


# --- iteration learned ------------------------------------------------------------------------

def iteration_learned(prediction_history) -> np.ndarray:
    """The earliest checkpoint from which every later prediction equals the final one.

    The final prediction is the last row (the end of training). This is the rule of
    :func:`pdlib.depth.prediction_depth` applied over training time instead of depth, and
    it is computed by that function: ``prediction_depth(history, history[-1])``.

    Parameters
    ----------
    prediction_history : array-like of int, shape (T + 1, n)
        Each point's predicted class at checkpoint ``t``: row 0 at initialisation, row ``T``
        at the end of training.

    Returns
    -------
    ndarray of int64, shape (n,)
        Checkpoint index in ``0 .. T`` (0: the prediction never changed).

    Examples
    --------
    >>> iteration_learned([[0, 1, 2], [1, 1, 0], [0, 1, 2], [0, 1, 0]]).tolist()
    [2, 0, 3]
    """
    history = as_array(prediction_history, "prediction_history")
    if history.ndim != 2:
        raise ValueError(f"prediction_history must be 2-D (T + 1, n), got shape {history.shape}")
    if history.size == 0:
        raise ValueError(f"prediction_history is empty: shape {history.shape}")
    if history.dtype.kind not in "iub":
        raise TypeError(f"prediction_history must hold integer class indices, got dtype {history.dtype}")
    # The last row agrees with itself, so prediction_depth's "last probe disagrees" rule never applies.
    return prediction_depth(history, history[-1])


def rescale_iteration(iteration, quantile: float = 0.95) -> np.ndarray:
    """One model's iteration learned, scaled so that initialisation is 0 and its ``quantile`` is 1.

    Parameters
    ----------
    iteration : array-like of int or float, shape (n,)
        One model's iteration learned of every point (checkpoint indices or steps), >= 0.
    quantile : float
        In (0, 1]; 0.95 in the paper. The quantile is numpy's default (linear
        interpolation). Points learned later than it get values above 1.

    Returns
    -------
    ndarray of float64, shape (n,)
        ``iteration / np.quantile(iteration, quantile)``; all zeros when that quantile is 0
        (the model had learned almost every point at initialisation, so there is no scale).

    Examples
    --------
    >>> rescale_iteration([0, 1, 2, 3, 4], quantile=0.5).tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0]
    >>> rescale_iteration([0, 0, 0, 3], quantile=0.5).tolist()  # the median is 0: no scale
    [0.0, 0.0, 0.0, 0.0]
    """
    iteration = _as_numbers(iteration, "iteration", 1)
    if not np.isfinite(iteration).all():
        raise ValueError("iteration contains NaN or infinite values")
    if iteration.min() < 0:
        raise ValueError(f"iteration must be non-negative (0 = initialisation), found {iteration.min()}")
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real):
        raise TypeError(f"quantile must be a number, got {type(quantile).__name__}")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    scale = np.quantile(iteration, quantile)
    return iteration / scale if scale > 0 else np.zeros_like(iteration)


# --- streaming --------------------------------------------------------------------------------

class EnsembleAccumulator:
    """Eq. 1, the consensus, Eq. 2 and PD_val / PD_train, one model at a time.

    Memory is ``O(n * n_classes)`` whatever the number of models: the vote counts of the
    held-out models, the two appearance counts and two running sums of ``depth``.
    The results equal those of :func:`consistency_score`, :func:`consensus_class`,
    :func:`consensus_consistency` and :func:`split_means` on the stacked arrays.

    Parameters
    ----------
    n : int
        Number of points.
    n_classes : int
        Number of classes.

    Attributes
    ----------
    votes : ndarray of int64, shape (n, n_classes)
        How many models that held each point out predicted each class.
    n_held_out, n_trained : ndarray of int64, shape (n,)
        How many models held each point out / trained on it.
    n_models : int
        Models added so far.

    Examples
    --------
    >>> acc = EnsembleAccumulator(2, 3)
    >>> acc = acc.add([2, 0], [True, True], depth=[4, 1]).add([1, 0], [True, False], depth=[2, 3])
    >>> out = acc.result(labels=[1, 0])
    >>> out["consistency"].tolist(), out["consensus"].tolist(), out["consensus_consistency"].tolist()
    ([0.5, 1.0], [1, 0], [0.5, 1.0])
    >>> out["depth_val"].tolist(), out["depth_train"].tolist()
    ([3.0, 1.0], [nan, 3.0])
    """

    def __init__(self, n: int, n_classes: int):
        self.n = check_positive_int(n, "n")
        self.n_classes = check_positive_int(n_classes, "n_classes")
        self.votes = np.zeros((self.n, self.n_classes), dtype=np.int64)
        self.n_held_out = np.zeros(self.n, dtype=np.int64)
        self.n_trained = np.zeros(self.n, dtype=np.int64)
        self.n_models = 0
        self._has_depth: bool | None = None
        self._depth_sum_val = np.zeros(self.n)
        self._depth_sum_train = np.zeros(self.n)

    def add(self, predictions, held_out, depth=None) -> "EnsembleAccumulator":
        """Add one model.

        Parameters
        ----------
        predictions : array-like of int, shape (n,)
            The model's class for every point, in ``[0, n_classes)``.
        held_out : array-like of bool, shape (n,)
            True where the point was in the model's validation split.
        depth : array-like of float, shape (n,), optional
            The model's prediction depth (or any per-point value) of every point. Give it for
            every model or for none.

        Returns
        -------
        self
        """
        predictions = _as_classes(predictions, "predictions", 1, self.n_classes)
        if predictions.shape[0] != self.n:
            raise ValueError(f"predictions has {predictions.shape[0]} entries but n={self.n}")
        held_out = _as_mask(held_out, "held_out", predictions.shape, "predictions")
        has_depth = depth is not None
        if self._has_depth is not None and has_depth != self._has_depth:
            raise ValueError("depth must be given for every model or for none")
        if has_depth:
            depth = _as_numbers(depth, "depth", 1)
            if depth.shape != predictions.shape:
                raise ValueError(f"depth has shape {depth.shape} but predictions has shape {predictions.shape}")
        # Validate everything before updating, so that a bad model leaves the state untouched.
        points = np.flatnonzero(held_out)
        self.votes[points, predictions[points]] += 1
        self.n_held_out += held_out
        self.n_trained += ~held_out
        if has_depth:
            self._depth_sum_val += np.where(held_out, depth, 0.0)
            self._depth_sum_train += np.where(held_out, 0.0, depth)
        self._has_depth = has_depth
        self.n_models += 1
        return self

    @property
    def depth_val(self) -> np.ndarray:
        """(n,) float64: mean ``depth`` over the models that held each point out (PD_val); NaN if none."""
        self._require_depth()
        return _ratio(self._depth_sum_val, self.n_held_out)

    @property
    def depth_train(self) -> np.ndarray:
        """(n,) float64: mean ``depth`` over the models that trained on each point (PD_train); NaN if none."""
        self._require_depth()
        return _ratio(self._depth_sum_train, self.n_trained)

    def _require_depth(self) -> None:
        if not self._has_depth:
            raise ValueError("no depth was added: pass depth= to add() for every model")

    def result(self, labels) -> dict:
        """The per-point metrics.

        Parameters
        ----------
        labels : array-like of int, shape (n,)
            Ground truth, in ``[0, n_classes)``.

        Returns
        -------
        dict of ndarray, each of shape (n,)
            ``consistency`` (float64, Eq. 1), ``consensus`` (int64, -1 if never held out),
            ``consensus_consistency`` (float64, Eq. 2), ``n_held_out`` and ``n_trained``
            (int64), and, when depths were added, ``depth_val`` and ``depth_train`` (float64).
        """
        if self.n_models == 0:
            raise ValueError("no models were added")
        labels = _check_labels(labels, self.n, n_classes=self.n_classes)
        rows = np.arange(self.n)
        consensus = consensus_from_votes(self.votes, labels)
        out = {
            "consistency": _ratio(self.votes[rows, labels], self.n_held_out),
            "consensus": consensus,
            "consensus_consistency": np.where(
                consensus >= 0, _ratio(self.votes[rows, np.maximum(consensus, 0)], self.n_held_out), np.nan),
            "n_held_out": self.n_held_out.copy(),
            "n_trained": self.n_trained.copy(),
        }
        if self._has_depth:
            out["depth_val"], out["depth_train"] = self.depth_val, self.depth_train
        return out
