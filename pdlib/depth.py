"""Prediction depth (Section 2.1 of the paper)."""

from __future__ import annotations

import numpy as np

from pdlib._checks import as_array

__all__ = ["prediction_depth"]


def prediction_depth(probe_predictions, final_prediction) -> np.ndarray:
    """Earliest probe from which every later probe predicts the network's final class.

    Probe ``l`` "makes" the prediction if probes ``l, l + 1, ..., n_probes - 1`` all
    agree with the network. When every probe agrees the depth is 0 (the input). When
    even the last (softmax) probe disagrees, the depth is the last index,
    ``n_probes - 1``: the decision is made only at the output.

    Parameters
    ----------
    probe_predictions : array-like of int, shape (n_probes, n)
        k-NN prediction of each probe (input first, softmax last) for each point.
    final_prediction : array-like of int, shape (n,)
        The network's own prediction (argmax of its logits) for each point.

    Returns
    -------
    depth : ndarray of int64, shape (n,)
        Values in ``0 .. n_probes - 1``.

    Examples
    --------
    >>> prediction_depth([[0, 1, 2], [1, 1, 0], [1, 1, 1]], [1, 1, 1]).tolist()
    [1, 0, 2]
    """
    probes = as_array(probe_predictions, "probe_predictions")
    final = as_array(final_prediction, "final_prediction")
    if probes.ndim != 2:
        raise ValueError(f"probe_predictions must be 2-D (n_probes, n), got shape {probes.shape}")
    if final.ndim != 1:
        raise ValueError(f"final_prediction must be 1-D (n,), got shape {final.shape}")
    if probes.shape[0] == 0 or probes.shape[1] == 0:
        raise ValueError(f"probe_predictions is empty: shape {probes.shape}")
    if probes.shape[1] != final.shape[0]:
        raise ValueError(
            f"probe_predictions has {probes.shape[1]} points but final_prediction has {final.shape[0]}"
        )
    for array, name in ((probes, "probe_predictions"), (final, "final_prediction")):
        if array.dtype.kind not in "iub":
            raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    n_probes = probes.shape[0]
    disagrees = probes != final[None, :]
    # Index of the last disagreeing probe, or -1 when all agree: argmax on the reversed rows.
    last_disagreement = np.where(
        disagrees.any(axis=0), n_probes - 1 - np.argmax(disagrees[::-1], axis=0), -1
    )
    return np.minimum(last_disagreement + 1, n_probes - 1).astype(np.int64)
