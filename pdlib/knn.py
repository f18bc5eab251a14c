"""Exact k-nearest-neighbour probes in plain torch: a chunked distance GEMM plus ``topk``.

The paper's probe (Section 2.1): Euclidean k-NN, ``k = 30``, uniform vote; exact, on CPU or CUDA.
Queries go in chunks whose (chunk x n_reference) block of scores fits in ``block_bytes``; one
``addmm`` gives ``||r||^2 - 2 q . r``, which orders each row as the distance does. Equal distances
go to the smaller reference index, vote ties to the smallest class (scikit-learn's rule).
Alternatives are measured in ``benchmarks/knn_probe.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from pdlib._checks import as_embeddings, as_labels, check_k, default_device

__all__ = ["DEFAULT_K", "knn_predict", "knn_neighbours", "vote", "KNNProbe"]

#: The paper's number of neighbours per probe (Section 2.1).
DEFAULT_K = 30

#: Bytes of one chunk's block of scores; peak extra memory is about twice this.
DEFAULT_BLOCK_BYTES = 256 * 2**20
#: Bytes of the rows re-selected at once where the k-th and (k+1)-th scores tie.
TIE_BYTES = 8 * 2**20


def _centre(reference: torch.Tensor) -> torch.Tensor:
    """The mean point rounded to multiples of 1/256 (smaller norms for float32; exact ties stay
    exact)."""
    return (reference.mean(dim=0, dtype=torch.float64) * 256).round().div(256).to(reference.dtype)


def _smallest(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest scores per row by (score, column) and their columns, in column order."""
    if scores.shape[1] <= k:
        return scores, torch.arange(scores.shape[1], device=scores.device).expand_as(scores)
    values, column = torch.topk(scores, k + 1, dim=1, largest=False, sorted=True)
    # topk picks arbitrarily among scores equal to the k-th; where the (k+1)-th ties it, re-select
    # by column.
    ties = values[:, k] == values[:, k - 1]
    values, column = values[:, :k], column[:, :k]
    n = scores.shape[1]
    columns = torch.arange(n, dtype=torch.int32, device=scores.device)
    past_end = torch.tensor(n, dtype=torch.int32, device=scores.device)
    slot = torch.arange(k, device=scores.device)[None, :]
    # Saturated softmax probes tie on most rows. Fewer than k scores lie below the k-th, so topk
    # already holds them all and only the columns equal to it are re-selected, smallest column
    # first. Tied rows go in small groups: block-sized temporaries would be mapped page by page.
    for tied in ties.nonzero()[:, 0].split(max(1, TIE_BYTES // (4 * n))):
        rows, top = scores[tied], values[tied]
        bound = top[:, k - 1 :]
        equal = torch.topk(
            torch.where(rows == bound, columns, past_end), k, dim=1, largest=False
        ).values.long()
        below = (top < bound).sum(dim=1, keepdim=True)
        keep = slot < below  # places held by scores below the k-th keep topk's column
        column[tied] = torch.where(keep, column[tied], equal.gather(1, (slot - below).clamp(min=0)))
        values[tied] = torch.where(keep, top, bound)
    column, order = column.sort(dim=1)
    return values.gather(1, order), column


def knn_neighbours(
    reference,
    queries=None,
    *,
    k: int = DEFAULT_K,
    device: str | torch.device | None = None,
    block_bytes: int | None = None,
) -> np.ndarray:
    """Indices of the ``k`` nearest reference points of every query, nearest first (ties by index).

    Parameters
    ----------
    reference : array-like of float, shape (n_reference, n_features)
        float64 is kept; anything else is computed in float32.
    queries : array-like of float, shape (n_queries, n_features), optional
        ``None``: leave-one-out (every reference point is a query, not its own neighbour).
    k : int
        Neighbours per query, ``1 <= k < n_reference``.
    device : str or torch.device, optional
        Defaults to CUDA when available.
    block_bytes : int, optional
        Bytes of one chunk's block of scores (default :data:`DEFAULT_BLOCK_BYTES`).

    Returns
    -------
    ndarray of int64, shape (n_queries, k)

    Examples
    --------
    >>> knn_neighbours(np.array([[0.0], [1.0], [3.0]]), np.array([[0.9], [2.5]]), k=2).tolist()
    [[1, 0], [2, 1]]
    """
    ref = as_embeddings(reference, "reference")
    leave_one_out = queries is None
    query = (
        ref if leave_one_out else as_embeddings(queries, "queries").astype(ref.dtype, copy=False)
    )
    if query.shape[1] != ref.shape[1]:
        raise ValueError(f"queries has {query.shape[1]} features but reference has {ref.shape[1]}")
    k = check_k(k, ref.shape[0], leave_one_out)
    device = default_device() if device is None else torch.device(device)
    ref_t = torch.as_tensor(ref, device=device)
    centre = _centre(ref_t)
    ref_t = ref_t - centre
    query_t = ref_t if leave_one_out else torch.as_tensor(query, device=device) - centre
    ref_norm = ref_t.square().sum(dim=1)
    n_ref, n_query = ref_t.shape[0], query_t.shape[0]
    rows = max(
        1, min(n_query, (block_bytes or DEFAULT_BLOCK_BYTES) // (ref_t.element_size() * n_ref))
    )
    out = torch.empty((n_query, k), dtype=torch.int64, device=device)
    # One buffer for every chunk: a fresh block per chunk doubles the CPU time (page faults).
    buffer = torch.empty((rows, n_ref), dtype=ref_t.dtype, device=device)
    for start in range(0, n_query, rows):
        chunk = query_t[start : start + rows]
        scores = torch.addmm(
            ref_norm[None, :], chunk, ref_t.T, alpha=-2, out=buffer[: chunk.shape[0]]
        )
        if leave_one_out:
            own = torch.arange(start, start + chunk.shape[0], device=device)
            scores[own - start, own] = float("inf")
        values, neighbours = _smallest(scores, k)
        out[start : start + chunk.shape[0]] = neighbours.gather(
            1, values.argsort(dim=1, stable=True)
        )
    return out.cpu().numpy()


def vote(neighbours, labels, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform majority vote: neighbours (n_queries, k), labels (n_reference,) -> predictions,
    votes.

    Returns ``predictions`` (n_queries,) int64 (ties to the smallest class) and ``votes``
    (n_queries, n_classes) int64, the neighbours in each class.

    >>> predictions, votes = vote(np.array([[0, 1], [1, 2]]), np.array([2, 1, 1]), 3)
    >>> predictions.tolist(), votes.tolist()
    ([1, 1], [[0, 1, 1], [0, 2, 0]])
    """
    neighbour_labels = np.asarray(labels)[np.asarray(neighbours)]
    n_queries = neighbour_labels.shape[0]
    flat = (np.arange(n_queries)[:, None] * n_classes + neighbour_labels).ravel()
    votes = np.bincount(flat, minlength=n_queries * n_classes).reshape(n_queries, n_classes)
    return votes.argmax(axis=1).astype(np.int64), votes.astype(np.int64)


def knn_predict(
    reference,
    labels,
    queries=None,
    *,
    k: int = DEFAULT_K,
    n_classes: int | None = None,
    device: str | torch.device | None = None,
    block_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN classification with a uniform vote, the paper's probe.

    Parameters
    ----------
    reference : array-like of float, shape (n_reference, n_features)
        Support-set embeddings (a model's training split at one probe).
    labels : array-like of int, shape (n_reference,)
    queries : array-like of float, shape (n_queries, n_features), optional
        ``None``: leave-one-out on the reference set.
    k : int
        Number of neighbours (30 in the paper).
    n_classes : int, optional
        Defaults to ``labels.max() + 1``.
    device, block_bytes
        See :func:`knn_neighbours`.

    Returns
    -------
    predictions : ndarray of int64, shape (n_queries,)
    votes : ndarray of int64, shape (n_queries, n_classes)
        See :func:`vote`.

    Examples
    --------
    >>> reference = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    >>> predictions, votes = knn_predict(reference, [0, 0, 0, 1, 1], np.array([[0.05], [4.9]]), k=3)
    >>> predictions.tolist(), votes.tolist()
    ([0, 1], [[3, 0], [1, 2]])
    """
    ref = as_embeddings(reference, "reference")
    y = as_labels(
        labels, "labels", n_classes=n_classes, length=ref.shape[0], length_name="reference"
    )
    n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
    neighbours = knn_neighbours(ref, queries, k=k, device=device, block_bytes=block_bytes)
    return vote(neighbours, y, n_classes)


class KNNProbe(ClassifierMixin, BaseEstimator):
    """scikit-learn estimator wrapping :func:`knn_predict` (``n_neighbors``: 30 in the paper;
    ``device``: torch's).

    >>> probe = KNNProbe(n_neighbors=1).fit([[0.0], [1.0]], ["a", "b"])
    >>> probe.predict([[0.2], [0.9]]).tolist()
    ['a', 'b']
    """

    def __init__(self, n_neighbors: int = DEFAULT_K, device: str | None = None):
        self.n_neighbors = n_neighbors
        self.device = device

    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], y_numeric=False)
        check_classification_targets(y)
        self.classes_, self._y_encoded = np.unique(y, return_inverse=True)
        self._fit_X = X
        return self

    def _votes(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        check_k(self.n_neighbors, self._fit_X.shape[0], leave_one_out=False, name="n_neighbors")
        _, votes = knn_predict(
            self._fit_X,
            self._y_encoded,
            X,
            k=self.n_neighbors,
            n_classes=len(self.classes_),
            device=self.device,
        )
        return votes

    def predict(self, X) -> np.ndarray:
        """Majority class of the ``n_neighbors`` nearest training points, shape (n_samples,)."""
        votes = self._votes(X)  # first: it checks that the probe is fitted
        return self.classes_[votes.argmax(axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Fraction of the neighbours in each class, shape (n_samples, n_classes)."""
        return self._votes(X) / float(self.n_neighbors)
