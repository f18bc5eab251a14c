"""Confidence intervals: binomial, Fisher-z, and bootstraps that resample whole points and networks.

Per-point quantities of an ensemble are averages over the networks that held a point out, so the
appearances of one point are not independent samples, nor are the points scored by one network.
:func:`two_level_interval` resamples both networks (rows) and points (columns) of ``(r, n)``
arrays; :func:`bootstrap_interval` resamples rows or whole groups. scipy's ``bootstrap`` cannot
resample clusters, hence these.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["wilson_interval", "pearson_interval", "bootstrap_interval", "two_level_interval"]


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's); (NaN, NaN) without trials.

    >>> [round(v, 3) for v in wilson_interval(8, 10)]
    [0.49, 0.943]
    """
    if trials <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, trials], got {successes} of {trials}")
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence, method="wilson")
    p = successes / trials
    # At p = 0 or 1 the interval touches the bound exactly; rounding must not move it.
    low = 0.0 if successes == 0 else float(ci.low)
    high = 1.0 if successes == trials else float(ci.high)
    return (min(low, p), max(high, p))


def pearson_interval(r: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval of a Pearson correlation over ``n`` independent pairs; (NaN, NaN) if
    undefined.

    >>> [round(v, 3) for v in pearson_interval(0.5, 100)]
    [0.337, 0.634]
    """
    if math.isnan(r) or n < 4:
        return (math.nan, math.nan)
    from statistics import NormalDist

    z, half = (
        math.atanh(min(max(r, -0.999999), 0.999999)),
        NormalDist().inv_cdf(0.5 + confidence / 2) / math.sqrt(n - 3),
    )
    low, high = math.tanh(z - half), math.tanh(z + half)
    return (-1.0 if r <= -1 else low, 1.0 if r >= 1 else high)  # a perfect correlation stays inside


def _percentiles(values, confidence: float) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).all():  # the statistic is undefined on every resample (e.g. a constant PD)
        return (math.nan, math.nan)
    alpha = (1 - confidence) / 2
    return (float(np.nanquantile(values, alpha)), float(np.nanquantile(values, 1 - alpha)))


def bootstrap_interval(
    statistic, *arrays, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0, groups=None
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)``; rows (or whole ``groups``) resampled
    together.

    >>> x = np.arange(100.0)
    >>> low, high = bootstrap_interval(np.mean, x, n_boot=200)
    >>> bool(low < 49.5 < high)
    True
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0]) if arrays else 0
    if n == 0:
        raise ValueError("bootstrap_interval needs non-empty arrays, got an empty one")
    if any(len(a) != n for a in arrays):
        raise ValueError(
            f"bootstrap_interval needs arrays of the same length, got {[len(a) for a in arrays]}"
        )
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries but the arrays have {n}")
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = (rng.integers(0, n, n) for _ in range(n_boot))
    else:
        groups = np.asarray(groups)
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
        draws = (
            np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
            for _ in range(n_boot)
        )
    return _percentiles([statistic(*(a[rows] for a in arrays)) for rows in draws], confidence)


def two_level_interval(
    statistic, *matrices, n_boot: int = 500, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of ``statistic(*matrices)`` resampling networks and points together.

    Parameters
    ----------
    statistic : callable
        Takes the ``matrices`` (same order) with rows and columns resampled; returns a float.
    *matrices : array-like, shape (r, n)
        Per (network, point) values, e.g. PD, iteration learned and the held-out mask.

    Each draw takes ``r`` networks and ``n`` points with replacement; a point drawn twice brings
    all its appearances twice, so no appearance counts as an independent sample.

    >>> rng = np.random.default_rng(0); x = rng.normal(size=(8, 300))
    >>> low, high = two_level_interval(lambda a: float(a.mean()), x, n_boot=200)
    >>> bool(low < 0 < high)
    True
    """
    matrices = [np.asarray(m) for m in matrices]
    if not matrices or matrices[0].ndim != 2:
        raise ValueError("two_level_interval needs (r, n) arrays")
    shape = matrices[0].shape
    if any(m.shape != shape for m in matrices):
        raise ValueError(f"every matrix must have shape {shape}, got {[m.shape for m in matrices]}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        rows, cols = rng.integers(0, shape[0], shape[0]), rng.integers(0, shape[1], shape[1])
        values.append(statistic(*(m[rows][:, cols] for m in matrices)))
    return _percentiles(values, confidence)
