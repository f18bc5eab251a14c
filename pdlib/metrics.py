"""Summary metrics on prediction-depth arrays (pure numpy, no I/O)."""

from __future__ import annotations

from itertools import combinations, product

import numpy as np

from pdlib._checks import as_array

__all__ = ["rescale_depth", "depth_correlation_matrix", "probe_accuracy", "softmax_disagreement"]


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
