"""Summary metrics on prediction-depth arrays (pure numpy, no I/O)."""

from __future__ import annotations

from itertools import combinations, product

import numpy as np

from pdlib._checks import as_array

__all__ = ["rescale_depth", "depth_correlation_matrix", "probe_accuracy", "softmax_disagreement", "lower_envelope",
           "accuracy_by_depth", "mean_by_depth", "pearson"]


def rescale_depth(depth, n_probes: int) -> np.ndarray:
    """Prediction depth mapped to [0, 1] by the architecture's maximum, ``n_probes - 1``.

    Parameters
    ----------
    depth : array-like of int or float, shape (...)
    n_probes : int
        Number of probes of the architecture (9 MLP, 15 VGG16, 11 ResNet18).

    Returns
    -------
    ndarray of float64, same shape

    Examples
    --------
    >>> rescale_depth([0, 5, 10], 11).tolist()
    [0.0, 0.5, 1.0]
    """
    if n_probes < 2:
        raise ValueError(f"n_probes must be at least 2, got {n_probes}")
    return as_array(depth, "depth").astype(np.float64) / (n_probes - 1)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def depth_correlation_matrix(depths_by_group: dict) -> tuple[list[str], np.ndarray]:
    """Pearson correlation of per-example PD between groups of runs (e.g. architectures).

    Off the diagonal: the mean correlation over every pair (one run of group ``a``,
    one of group ``b``). On the diagonal: the mean over pairs of *different* runs of
    the same group, i.e. agreement between random seeds (NaN with a single run).

    Parameters
    ----------
    depths_by_group : dict of str to list of ndarray, each of shape (n,)
        Prediction depth of the same ``n`` points from each run of each group.

    Returns
    -------
    names : list of str
    matrix : ndarray of float64, shape (n_groups, n_groups)
    """
    names = list(depths_by_group)
    runs = {name: [as_array(d, f"depths_by_group[{name!r}]").astype(np.float64) for d in depths_by_group[name]]
            for name in names}
    lengths = {d.shape for group in runs.values() for d in group}
    if len(lengths) != 1:
        raise ValueError(f"every depth array must cover the same points; got shapes {sorted(lengths)}")
    matrix = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            pairs = combinations(runs[a], 2) if i == j else product(runs[a], runs[b])
            values = [_pearson(x, y) for x, y in pairs]
            if values:
                matrix[i, j] = float(np.mean(values))
    return names, matrix


def probe_accuracy(probe_predictions, labels) -> np.ndarray:
    """Fraction of points each probe assigns to ``labels``.

    Parameters
    ----------
    probe_predictions : array-like of int, shape (n_probes, n)
    labels : array-like of int, shape (n,)

    Returns
    -------
    ndarray of float64, shape (n_probes,)
    """
    probes = as_array(probe_predictions, "probe_predictions")
    labels = as_array(labels, "labels")
    if probes.ndim != 2 or labels.shape != probes.shape[1:]:
        raise ValueError(f"shapes (n_probes, n) and (n,) expected, got {probes.shape} and {labels.shape}")
    return (probes == labels[None, :]).mean(axis=1)


def softmax_disagreement(probe_predictions, network_predictions) -> float:
    """Fraction of points whose last (softmax) probe disagrees with the network.

    These points get the largest prediction depth by definition; the project reports
    how many there are, since a well-converged network should have few.
    """
    probes = as_array(probe_predictions, "probe_predictions")
    network = as_array(network_predictions, "network_predictions")
    return float((probes[-1] != network).mean())


def lower_envelope(x, y, *, n_bins: int = 10, quantile: float = 0.02) -> dict:
    """A straight line fitted to the lower edge of a point cloud.

    The cloud is cut into ``n_bins`` equal-width bins of ``x``; in each bin with at least
    20 points, the ``quantile`` of ``y`` marks the edge, and a least-squares line
    through those edge points gives the bound ``y >= intercept + slope * x``.

    Parameters
    ----------
    x, y : array-like of float, shape (n,)
        E.g. mean prediction depth (rescaled to [0, 1]) and consensus-consistency.
    n_bins : int
    quantile : float
        Lower quantile taken as the edge in each bin (robust to a few outliers).

    Returns
    -------
    dict with ``slope``, ``intercept`` (floats), ``centres`` and ``edges`` (the fitted
    points), and ``violations`` (fraction of points below the line).
    """
    x = as_array(x, "x").astype(np.float64)
    y = as_array(y, "y").astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    bins = np.linspace(x.min(), x.max(), n_bins + 1)
    which = np.clip(np.digitize(x, bins) - 1, 0, n_bins - 1)
    centres, edges = [], []
    for b in range(n_bins):
        members = y[which == b]
        if len(members) >= 20:
            centres.append(0.5 * (bins[b] + bins[b + 1]))
            edges.append(np.quantile(members, quantile))
    if len(centres) < 2:
        return {"slope": float("nan"), "intercept": float("nan"), "centres": np.array(centres),
                "edges": np.array(edges), "violations": float("nan")}
    slope, intercept = np.polyfit(centres, edges, 1)
    return {"slope": float(slope), "intercept": float(intercept), "centres": np.array(centres),
            "edges": np.array(edges), "violations": float(np.mean(y < intercept + slope * x - 1e-9))}


def accuracy_by_depth(depth, correct, n_probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of the predictions made at each prediction depth.

    Parameters
    ----------
    depth : array-like of int, shape (m,)
        Prediction depth of each (model, point) prediction.
    correct : array-like of bool, shape (m,)
        Whether that prediction equals the ground truth.
    n_probes : int

    Returns
    -------
    accuracy : ndarray of float64, shape (n_probes,)
        NaN where no prediction has that depth.
    count : ndarray of int64, shape (n_probes,)
    """
    return mean_by_depth(depth, as_array(correct, "correct").astype(np.float64), n_probes)


def mean_by_depth(depth, values, n_probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` over the (model, point) pairs at each prediction depth.

    Parameters
    ----------
    depth : array-like of int, shape (m,)
        Prediction depth of each pair, in ``[0, n_probes)``.
    values : array-like of float, shape (m,)
        E.g. correctness, or the rescaled iteration learned; NaN pairs are skipped.
    n_probes : int

    Returns
    -------
    mean : ndarray of float64, shape (n_probes,)
        NaN where no pair has that depth.
    count : ndarray of int64, shape (n_probes,)
        Pairs (with a finite value) at each depth.
    """
    depth = as_array(depth, "depth").astype(np.int64)
    values = as_array(values, "values").astype(np.float64)
    if values.shape != depth.shape:
        raise ValueError(f"values has shape {values.shape} but depth has shape {depth.shape}")
    keep = np.isfinite(values)
    count = np.bincount(depth[keep], minlength=n_probes)
    total = np.bincount(depth[keep], weights=values[keep], minlength=n_probes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


def pearson(x, y) -> float:
    """Pearson correlation over the pairs where both are finite; NaN if either is constant."""
    x = as_array(x, "x").astype(np.float64)
    y = as_array(y, "y").astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return _pearson(x[keep], y[keep])
