"""Every metric of the paper as a pure function on numpy arrays (no I/O, no torch).

``predictions[m, i]`` (r, n) is model ``m``'s class for point ``i``; ``held_out[m, i]`` is True when
point ``i`` was in model ``m``'s validation split. A point no model held out gets NaN (class -1).
"""

from __future__ import annotations

import math
from itertools import combinations, product

import numpy as np

from pdlib._checks import (
    as_array,
    as_classes,
    as_labels,
    as_mask,
    as_numbers,
    check_fraction,
    check_positive_int,
)
from pdlib.intervals import (  # noqa: F401  (re-exported: metrics' public names)
    bootstrap_interval,
    pearson_interval,
    wilson_interval,
)

__all__ = [
    "prediction_depth",
    "undecided_depth",
    "probe_accuracy",
    "softmax_disagreement",
    "rescale_depth",
    "consistency_score",
    "held_out_votes",
    "consensus_from_votes",
    "consensus_class",
    "consensus_consistency",
    "split_means",
    "iteration_learned",
    "binned_correlation",
    "checkpoint_schedule",
    "even_checkpoints",
    "rescale_iteration",
    "pearson",
    "rank_correlation",
    "depth_correlation_matrix",
    "lower_envelope",
    "mean_by_depth",
    "accuracy_by_depth",
    "wilson_interval",
    "pearson_interval",
    "bootstrap_interval",
]


def _ratio(numerator, count) -> np.ndarray:
    """``numerator / count`` as float64, NaN where ``count`` is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, numerator / np.maximum(count, 1), np.nan)


# --- prediction depth (Section 2.1) -------------------------------------------------------------


def _probes_and_final(probe_predictions, final_prediction) -> tuple[np.ndarray, np.ndarray]:
    probes = as_classes(probe_predictions, "probe_predictions", 2)
    final = as_classes(final_prediction, "final_prediction", 1)
    if probes.shape[1] != final.shape[0]:
        raise ValueError(
            f"probe_predictions has {probes.shape[1]} points but final_prediction "
            f"has {final.shape[0]}"
        )
    return probes, final


def prediction_depth(probe_predictions, final_prediction) -> np.ndarray:
    """Earliest probe from which every later probe predicts the network's final class: (n_probes,
    n), (n,) -> (n,).

    All agree: 0 (the input). Where even the last (softmax) probe disagrees no probe satisfies the
    definition and the point is *undecided*: it gets ``n_probes - 1``, the index of the softmax
    probe, so that means and histograms keep it; :func:`undecided_depth` marks these points, and
    statistics they would distort are reported with and without them.

    >>> prediction_depth([[0, 1, 2], [1, 1, 0], [1, 1, 1]], [1, 1, 1]).tolist()
    [1, 0, 2]
    >>> prediction_depth([[0], [0], [0]], [1]).tolist()  # undecided: every probe disagrees
    [2]
    """
    probes, final = _probes_and_final(probe_predictions, final_prediction)
    n_probes = probes.shape[0]
    disagrees = probes != final[None, :]
    # Index of the last disagreeing probe (argmax on the reversed rows), -1 when all agree.
    last = np.where(disagrees.any(axis=0), n_probes - 1 - np.argmax(disagrees[::-1], axis=0), -1)
    return np.minimum(last + 1, n_probes - 1).astype(np.int64)


def undecided_depth(probe_predictions, final_prediction) -> np.ndarray:
    """Points without a prediction depth, whose last probe disagrees with the network: (n_probes,
    n), (n,) -> (n,) bool.

    >>> undecided_depth([[0, 1], [1, 1], [1, 0]], [1, 1]).tolist()
    [False, True]
    """
    probes, final = _probes_and_final(probe_predictions, final_prediction)
    return probes[-1] != final


def probe_accuracy(probe_predictions, labels) -> np.ndarray:
    """Fraction of points each probe assigns to ``labels``: (n_probes, n), (n,) -> (n_probes,).

    >>> probe_accuracy([[0, 1], [1, 1]], [1, 1]).tolist()
    [0.5, 1.0]
    """
    probes, labels = as_array(probe_predictions, "probe_predictions"), as_array(labels, "labels")
    if probes.ndim != 2 or labels.shape != probes.shape[1:]:
        raise ValueError(
            f"shapes (n_probes, n) and (n,) expected, got {probes.shape} and {labels.shape}"
        )
    return (probes == labels[None, :]).mean(axis=1)


def softmax_disagreement(probe_predictions, network_predictions) -> float:
    """Fraction of undecided points (:func:`undecided_depth`): their softmax probe disagrees."""
    return float(undecided_depth(probe_predictions, network_predictions).mean())


def rescale_depth(depth, n_probes: int) -> np.ndarray:
    """PD mapped to [0, 1] by the architecture's largest, ``n_probes - 1``.

    >>> rescale_depth([0, 5, 10], 11).tolist()
    [0.0, 0.5, 1.0]
    """
    if n_probes < 2:
        raise ValueError(f"n_probes must be at least 2, got {n_probes}")
    return as_array(depth, "depth").astype(np.float64) / (n_probes - 1)


# --- ensembles: Eq. 1, the consensus class, Eq. 2, PD_val and PD_train (Section 3.1) -----------


def _ensemble(predictions, held_out, n_classes=None) -> tuple[np.ndarray, np.ndarray]:
    predictions = as_classes(predictions, "predictions", 2, n_classes=n_classes)
    return predictions, as_mask(held_out, "held_out", predictions.shape, "predictions")


def consistency_score(predictions, held_out, labels) -> np.ndarray:
    """Eq. 1: over the models that held a point out, the fraction predicting its label (NaN if
    none).

    >>> consistency_score([[0, 1, 2], [1, 1, 2]], [[True, False, False], [True, True, False]],
    ...                   [0, 1, 2]).tolist()
    [0.5, 1.0, nan]
    """
    predictions, held_out = _ensemble(predictions, held_out)
    labels = as_labels(labels, "labels", length=predictions.shape[1], length_name="predictions")
    return _ratio(((predictions == labels) & held_out).sum(axis=0), held_out.sum(axis=0))


def held_out_votes(predictions, held_out, n_classes: int) -> np.ndarray:
    """How many of the models that held each point out predict each class: (n, n_classes) int64.

    >>> held_out_votes([[0, 1], [2, 1]], [[True, True], [True, False]], 3).tolist()
    [[1, 0, 1], [0, 1, 0]]
    """
    n_classes = check_positive_int(n_classes, "n_classes")
    predictions, held_out = _ensemble(predictions, held_out, n_classes)
    votes = np.zeros((predictions.shape[1], n_classes), dtype=np.int64)
    model, point = np.nonzero(held_out)
    np.add.at(votes, (point, predictions[model, point]), 1)
    return votes


def consensus_from_votes(votes, labels) -> np.ndarray:
    """Plurality class of each row of votes (-1 without votes); ties to the label if tied, else the
    smallest.

    >>> consensus_from_votes([[1, 2, 2], [1, 2, 2], [0, 0, 0]], [2, 0, 1]).tolist()
    [2, 1, -1]
    """
    votes = as_array(votes, "votes")
    if votes.ndim != 2 or votes.size == 0 or votes.dtype.kind not in "iu" or votes.min() < 0:
        raise ValueError(
            "votes must be a non-empty (n, n_classes) array of counts, got "
            f"{votes.dtype} {votes.shape}"
        )
    labels = as_labels(
        labels, "labels", n_classes=votes.shape[1], length=votes.shape[0], length_name="votes"
    )
    tied = votes == votes.max(axis=1, keepdims=True)
    consensus = np.where(tied[np.arange(len(labels)), labels], labels, tied.argmax(axis=1))
    return np.where(votes.sum(axis=1) > 0, consensus, -1).astype(np.int64)


def consensus_class(predictions, held_out, labels, n_classes: int) -> np.ndarray:
    """The majority vote of the models that held a point out, with the paper's tie rule (Fig. 7).

    >>> consensus_class([[2, 0, 1], [1, 2, 1]], [[True, True, False], [True, True, False]],
    ...                 [1, 1, 0], 3).tolist()
    [1, 0, -1]
    """
    return consensus_from_votes(held_out_votes(predictions, held_out, n_classes), labels)


def consensus_consistency(predictions, held_out, consensus) -> np.ndarray:
    """Eq. 2: over the models that held a point out, the fraction predicting its consensus (NaN:
    none, or -1).

    >>> consensus_consistency([[2, 0, 1], [1, 2, 1]], [[True, True, False], [True, True, False]],
    ...                       [1, 0, -1]).tolist()
    [0.5, 0.5, nan]
    """
    predictions, held_out = _ensemble(predictions, held_out)
    consensus = as_classes(consensus, "consensus", 1, allow_missing=True)
    if consensus.shape[0] != predictions.shape[1]:
        raise ValueError(
            f"consensus must have shape ({predictions.shape[1]},), got {consensus.shape}"
        )
    hits = ((predictions == consensus) & held_out).sum(axis=0)
    return np.where(consensus >= 0, _ratio(hits, held_out.sum(axis=0)), np.nan)


def split_means(values, held_out) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the mean of ``values`` over the models that held it out and over the others
    (PD_val, PD_train).

    >>> held_out = [[True, False], [False, False], [True, False]]
    >>> val, train = split_means([[1, 2], [3, 4], [5, 6]], held_out)
    >>> val.tolist(), train.tolist()
    ([3.0, nan], [3.0, 4.0])
    """
    values = as_numbers(values, "values", 2)
    held_out = as_mask(held_out, "held_out", values.shape, "values")
    n_held_out = held_out.sum(axis=0)
    # np.where, not a product with the mask: a NaN must not leak into the other split's mean
    return (
        _ratio(np.where(held_out, values, 0.0).sum(axis=0), n_held_out),
        _ratio(np.where(held_out, 0.0, values).sum(axis=0), held_out.shape[0] - n_held_out),
    )


# --- iteration learned (Section 3.2) ------------------------------------------------------------


def iteration_learned(prediction_history) -> np.ndarray:
    """Earliest checkpoint from which every later prediction equals the final one: (T + 1, n) ->
    (n,).

    >>> iteration_learned([[0, 1, 2], [1, 1, 0], [0, 1, 2], [0, 1, 0]]).tolist()
    [2, 0, 3]
    """
    history = as_classes(prediction_history, "prediction_history", 2)
    return prediction_depth(history, history[-1])


def binned_correlation(depth, values, n_probes: int, min_count: int = 20) -> float:
    """Pearson r between PD and the mean of ``values`` at that PD, over the PD values with at
    least ``min_count`` entries (NaN with fewer than 3): the curve of the paper's Fig. 5 (left).

    >>> depth, values = [0, 0, 1, 1, 2, 2], [0.1, 0.3, 0.4, 0.6, 0.9, 0.9]
    >>> round(binned_correlation(depth, values, 3, min_count=2), 4)
    0.9966
    """
    mean, count = mean_by_depth(np.asarray(depth, dtype=np.int64), values, n_probes)
    used = count >= min_count
    return pearson(np.arange(n_probes)[used], mean[used]) if used.sum() >= 3 else float("nan")


def checkpoint_schedule(total_steps: int, n_checkpoints: int) -> np.ndarray:
    """Steps of ``n_checkpoints`` snapshots evenly spread over ``total_steps`` after step 0
    (initialisation): (n_checkpoints + 1,) int64, fewer where steps round together.

    >>> checkpoint_schedule(140, 40)[:5].tolist(), checkpoint_schedule(10, 0).tolist()
    ([0, 4, 7, 10, 14], [0])
    """
    return np.unique(np.linspace(0, total_steps, n_checkpoints + 1).round().astype(np.int64))


def even_checkpoints(steps, n_checkpoints: int) -> np.ndarray:
    """Which snapshots, taken at ``steps`` (T + 1,) ending with the last step, belong to the
    ``n_checkpoints`` even ones (:func:`checkpoint_schedule`): (T + 1,) bool. The others are extra
    snapshots (inside the first epoch) that only a resolution study reads.

    >>> even_checkpoints([0, 1, 2, 4, 7, 10, 14], 4).tolist()
    [True, False, False, True, True, True, True]
    """
    steps = np.asarray(steps, dtype=np.int64)
    if steps.ndim != 1 or steps.size == 0:
        raise ValueError(f"steps must be a non-empty 1-D array, got shape {steps.shape}")
    return np.isin(steps, checkpoint_schedule(int(steps[-1]), n_checkpoints))


def rescale_iteration(iteration, quantile: float = 0.95) -> np.ndarray:
    """Iteration learned divided by its ``quantile`` (all zeros when that quantile is 0).

    >>> rescale_iteration([0, 1, 2, 3, 4], quantile=0.5).tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0]
    """
    iteration = as_numbers(iteration, "iteration", 1, finite=True)
    if iteration.min() < 0:
        raise ValueError(
            f"iteration must be non-negative (0 = initialisation), found {iteration.min()}"
        )
    quantile = check_fraction(quantile, "quantile", closed=True)
    if quantile == 0:
        raise ValueError("quantile must be in (0, 1], got 0")
    scale = np.quantile(iteration, quantile)
    return iteration / scale if scale > 0 else np.zeros_like(iteration)


# --- relations between per-point quantities -----------------------------------------------------


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_numbers(x, "x", 1), as_numbers(y, "y", 1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def pearson(x, y) -> float:
    """Pearson correlation over the pairs where both are finite; NaN if either side is constant.

    >>> round(pearson([1, 2, 3, np.nan], [2, 4, 7, 1]), 4)
    0.9934
    """
    x, y = _finite_pairs(x, y)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def rank_correlation(x, y) -> float:
    """Spearman correlation (average ranks for ties) over the finite pairs; NaN below 3 or if
    constant.

    >>> rank_correlation([1, 2, 3, 4], [1, 4, 9, 16])
    1.0
    """
    from scipy.stats import spearmanr

    x, y = _finite_pairs(x, y)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def depth_correlation_matrix(depths_by_group: dict) -> tuple[list[str], np.ndarray]:
    """Mean Pearson r of per-point PD between groups of runs: {group: [PD (n,)]} -> (names, matrix).

    Off the diagonal over every cross pair; on it over pairs of different runs of one group (NaN:
    one run).

    >>> names, m = depth_correlation_matrix({"a": [[0, 1, 2], [0, 1, 3]], "b": [[2, 1, 0]]})
    >>> names, np.round(m, 2).tolist()
    (['a', 'b'], [[0.98, -0.99], [-0.99, nan]])
    """
    names = list(depths_by_group)
    runs = {
        name: [as_numbers(d, f"depths_by_group[{name!r}]", 1) for d in depths_by_group[name]]
        for name in names
    }
    if len({d.shape for group in runs.values() for d in group}) != 1:
        raise ValueError("every depth array must cover the same points")
    matrix = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            pairs = combinations(runs[a], 2) if i == j else product(runs[a], runs[b])
            values = [pearson(x, y) for x, y in pairs]
            if values:
                matrix[i, j] = float(np.mean(values))
    return names, matrix


def lower_envelope(x, y, *, n_bins: int = 10, quantile: float = 0.02, min_count: int = 20) -> dict:
    """A line fitted to the lower edge of a point cloud: ``y >= intercept + slope * x``.

    In each of ``n_bins`` equal-width bins of ``x`` with ``min_count`` points, the ``quantile`` of
    ``y`` is an edge; a least-squares line goes through the edges. Returns ``slope``, ``intercept``
    (NaN below 2 bins), ``centres``, ``edges`` and ``violations`` (fraction of points below the
    line).

    >>> rng = np.random.default_rng(0); x = rng.random(3000); y = 1 - x + rng.random(3000)
    >>> fit = lower_envelope(x, y)
    >>> bool(-1.2 < fit["slope"] < -0.8), bool(fit["violations"] < 0.05)
    (True, True)
    """
    x, y = _finite_pairs(x, y)
    if len(x) == 0:
        return {
            "slope": math.nan,
            "intercept": math.nan,
            "violations": math.nan,
            "centres": np.array([]),
            "edges": np.array([]),
        }
    bins = np.linspace(x.min(), x.max(), n_bins + 1)
    which = np.clip(np.digitize(x, bins) - 1, 0, n_bins - 1)
    centres, edges = [], []
    for b in range(n_bins):
        members = y[which == b]
        if len(members) >= min_count:
            centres.append(0.5 * (bins[b] + bins[b + 1]))
            edges.append(np.quantile(members, quantile))
    fit = {"centres": np.array(centres), "edges": np.array(edges)}
    if len(centres) < 2:
        return {"slope": math.nan, "intercept": math.nan, "violations": math.nan, **fit}
    slope, intercept = np.polyfit(centres, edges, 1)
    return {
        "slope": float(slope),
        "intercept": float(intercept),
        "violations": float(np.mean(y < intercept + slope * x - 1e-9)),
        **fit,
    }


def mean_by_depth(depth, values, n_probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` (NaN skipped) and count of the (model, point) pairs at each PD, each
    (n_probes,).

    >>> mean, count = mean_by_depth([0, 0, 2], [1.0, 0.0, 1.0], 3)
    >>> mean.tolist(), count.tolist()
    ([0.5, nan, 1.0], [2, 0, 1])
    """
    depth = as_classes(depth, "depth", 1, n_classes=n_probes)
    values = as_numbers(values, "values", 1)
    if values.shape != depth.shape:
        raise ValueError(f"values has shape {values.shape} but depth has shape {depth.shape}")
    keep = np.isfinite(values)
    count = np.bincount(depth[keep], minlength=n_probes)
    return _ratio(np.bincount(depth[keep], weights=values[keep], minlength=n_probes), count), count


def accuracy_by_depth(depth, correct, n_probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of the predictions made at each PD (:func:`mean_by_depth` of ``correct``)."""
    return mean_by_depth(depth, as_array(correct, "correct").astype(np.float64), n_probes)
