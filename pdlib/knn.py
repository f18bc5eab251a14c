"""Exact k-nearest-neighbour probes: a blocked squared-distance GEMM plus top-k.

The probe of the paper (Section 2.1) is a k-NN classifier with Euclidean distance,
``k = 30`` and a uniform vote. Here it is exact: no approximate index, no pooling.
Ties between classes go to the smallest class index, scikit-learn's rule, so
``KNeighborsClassifier(k, algorithm="brute")`` is an oracle wherever distances are
not exactly tied.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from pdlib._checks import as_embeddings, as_labels, check_k

__all__ = ["knn_predict", "knn_neighbours", "KNNProbe"]

#: Bytes of scratch memory one distance block may use (float32 scores plus top-k work).
DEFAULT_BLOCK_BYTES = 16 * 2**20


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _block_sizes(n_queries: int, n_reference: int, block_bytes: int) -> tuple[int, int]:
    """Rows of queries and columns of reference per distance block.

    Blocks of a few MB stay in cache between the GEMM that writes them and the
    selection that reads them; capping the columns keeps memory independent of N.
    """
    cols = min(n_reference, 4096)
    rows = max(1, min(n_queries, block_bytes // (4 * cols)))
    return rows, cols


def _block_topk(scores: torch.Tensor, k: int, groups: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``k`` smallest scores of each row, and their columns, without a full top-k pass.

    The columns are cut into ``groups`` interleaved slabs, and each row's elementwise
    minimum over the slabs (one cheap vectorised pass) gives one candidate per slab
    column. A column whose minimum is not among the ``k`` smallest minima cannot hold a
    top-k element (``k`` other columns each hold a smaller one), so top-k only needs to
    look at the ``k * groups`` scores of the winning columns.
    """
    rows, cols = scores.shape
    width = cols // groups
    if cols % groups or width < 2 * k:
        return torch.topk(scores, min(k, cols), dim=1, largest=False, sorted=False)
    column_min = scores.view(rows, groups, width).amin(dim=1)
    _, best_columns = torch.topk(column_min, k, dim=1, largest=False, sorted=False)
    offsets = torch.arange(groups, device=scores.device) * width
    candidates = (best_columns[:, :, None] + offsets).reshape(rows, k * groups)
    values, position = torch.topk(torch.gather(scores, 1, candidates), k, dim=1, largest=False, sorted=False)
    return values, torch.gather(candidates, 1, position)


def knn_neighbours(
    reference,
    queries=None,
    *,
    k: int = 30,
    device: str | torch.device | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> np.ndarray:
    """Indices of the ``k`` nearest reference points of each query (Euclidean).

    Parameters
    ----------
    reference : array-like of float, shape (n_reference, n_features)
    queries : array-like of float, shape (n_queries, n_features), optional
        ``None`` means leave-one-out: the queries are the reference points themselves,
        and no point is its own neighbour.
    k : int
        Number of neighbours, ``1 <= k < n_reference`` (``k <= n_reference - 1`` with
        leave-one-out).
    device : str or torch.device, optional
        Where to compute; defaults to CUDA when available, else CPU.
    block_bytes : int
        Scratch memory per distance block, in bytes. Peak extra memory is a small
        multiple of it plus the float32 copies of the inputs, independent of N^2.

    Returns
    -------
    neighbours : ndarray of int64, shape (n_queries, k)
        Sorted by increasing distance.
    """
    device = torch.device(device) if device is not None else _default_device()
    leave_one_out = queries is None
    ref = as_embeddings(reference, "reference")
    qry = ref if leave_one_out else as_embeddings(queries, "queries")
    if not leave_one_out and qry.shape[1] != ref.shape[1]:
        raise ValueError(
            f"queries has {qry.shape[1]} features but reference has {ref.shape[1]}; "
            "both must come from the same probe"
        )
    check_k(k, ref.shape[0], leave_one_out)
    return _neighbours(ref, qry, k, leave_one_out, device, block_bytes)


def _neighbours(ref, qry, k, leave_one_out, device, block_bytes) -> np.ndarray:
    dtype = torch.float64 if ref.dtype == np.float64 and qry.dtype == np.float64 else torch.float32
    # Centring changes no distance but shrinks the norms, which keeps the
    # ||r||^2 - 2 q.r expansion accurate in float32.
    centre = ref.mean(axis=0, dtype=np.float64)
    ref_t = torch.as_tensor(ref, device=device).to(dtype) - torch.as_tensor(centre, device=device).to(dtype)
    qry_t = ref_t if leave_one_out else (torch.as_tensor(qry, device=device).to(dtype) - ref_t.new_tensor(centre))
    ref_sq_norm = (ref_t * ref_t).sum(dim=1)
    n_queries, n_reference = qry_t.shape[0], ref_t.shape[0]
    rows, cols = _block_sizes(n_queries, n_reference, block_bytes)
    out = torch.empty((n_queries, k), dtype=torch.int64)
    for q0 in range(0, n_queries, rows):
        q1 = min(q0 + rows, n_queries)
        best_scores = best_index = None
        for r0 in range(0, n_reference, cols):
            r1 = min(r0 + cols, n_reference)
            # ||r||^2 - 2 q.r ranks like ||q - r||^2 (||q||^2 is constant per row);
            # addmm fuses the norm term into the GEMM.
            scores = torch.addmm(ref_sq_norm[r0:r1], qry_t[q0:q1], ref_t[r0:r1].T, alpha=-2.0)
            if leave_one_out and r0 < q1 and q0 < r1:
                diagonal = torch.arange(max(q0, r0), min(q1, r1), device=device)
                scores[diagonal - q0, diagonal - r0] = math.inf
            block_scores, block_index = _block_topk(scores, k)
            block_index += r0
            if best_scores is not None:
                merged_scores = torch.cat([best_scores, block_scores], dim=1)
                merged_index = torch.cat([best_index, block_index], dim=1)
                block_scores, position = torch.topk(merged_scores, k, dim=1, largest=False, sorted=False)
                block_index = torch.gather(merged_index, 1, position)
            best_scores, best_index = block_scores, block_index
        # Sort by distance, then by index, so that equal distances keep scikit-learn's order.
        order = torch.argsort(best_index, dim=1)
        best_scores, best_index = torch.gather(best_scores, 1, order), torch.gather(best_index, 1, order)
        order = torch.argsort(best_scores, dim=1, stable=True)
        out[q0:q1] = torch.gather(best_index, 1, order).cpu()
    return out.numpy()


def knn_predict(
    reference,
    labels,
    queries=None,
    *,
    k: int = 30,
    n_classes: int | None = None,
    device: str | torch.device | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-NN classification with a uniform vote, the paper's probe.

    Parameters
    ----------
    reference : array-like of float, shape (n_reference, n_features)
        Support-set embeddings (a model's training split at one probe).
    labels : array-like of int, shape (n_reference,)
        Class of each reference point, in ``[0, n_classes)``.
    queries : array-like of float, shape (n_queries, n_features), optional
        Points to classify. ``None`` means leave-one-out on the reference set.
    k : int
        Number of neighbours (30 in the paper).
    n_classes : int, optional
        Number of classes; defaults to ``labels.max() + 1``.
    device, block_bytes
        See :func:`knn_neighbours`.

    Returns
    -------
    predictions : ndarray of int64, shape (n_queries,)
        The majority class; ties go to the smallest class index.
    votes : ndarray of int64, shape (n_queries, n_classes)
        Number of the ``k`` neighbours in each class; each row sums to ``k``.

    Examples
    --------
    >>> reference = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    >>> predictions, votes = knn_predict(reference, [0, 0, 0, 1, 1], np.array([[0.05], [4.9]]), k=3)
    >>> predictions.tolist(), votes.tolist()
    ([0, 1], [[3, 0], [1, 2]])
    """
    ref = as_embeddings(reference, "reference")
    y = as_labels(labels, "labels", n_classes=n_classes, length=ref.shape[0], length_name="reference")
    n_classes = int(y.max()) + 1 if n_classes is None else int(n_classes)
    neighbours = knn_neighbours(ref, queries, k=k, device=device, block_bytes=block_bytes)
    return vote(neighbours, y, n_classes)


def vote(neighbours: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform majority vote over neighbour labels.

    Parameters
    ----------
    neighbours : ndarray of int, shape (n_queries, k)
    labels : ndarray of int64, shape (n_reference,)
    n_classes : int

    Returns
    -------
    predictions : ndarray of int64, shape (n_queries,)
        ``argmax`` of the votes, so ties go to the smallest class index.
    votes : ndarray of int64, shape (n_queries, n_classes)
    """
    neighbour_labels = labels[neighbours]
    n_queries = neighbours.shape[0]
    flat = (np.arange(n_queries)[:, None] * n_classes + neighbour_labels).ravel()
    votes = np.bincount(flat, minlength=n_queries * n_classes).reshape(n_queries, n_classes)
    return votes.argmax(axis=1).astype(np.int64), votes.astype(np.int64)


class KNNProbe(ClassifierMixin, BaseEstimator):
    """scikit-learn estimator wrapping :func:`knn_predict`.

    Parameters
    ----------
    n_neighbors : int
        Number of neighbours, 30 in the paper.
    device : str, optional
        Torch device for the distance GEMM; ``None`` picks CUDA when available.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The distinct training labels, sorted.
    n_features_in_ : int
    """

    def __init__(self, n_neighbors: int = 30, device: str | None = None):
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
            self._fit_X, self._y_encoded, X, k=self.n_neighbors,
            n_classes=len(self.classes_), device=self.device,
        )
        return votes

    def predict(self, X) -> np.ndarray:
        """Majority class of the ``n_neighbors`` nearest training points, shape (n_samples,)."""
        votes = self._votes(X)
        return self.classes_[votes.argmax(axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Fraction of the neighbours in each class, shape (n_samples, n_classes)."""
        return self._votes(X) / float(self.n_neighbors)
