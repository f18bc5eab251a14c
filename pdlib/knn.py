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

#: Bytes of scratch memory for one block of scores (float32); peak extra memory is about
#: this plus the float32 copies of the inputs, independent of N^2.
DEFAULT_BLOCK_BYTES = 256 * 2**20
#: Reference columns per GEMM: one tile of scores stays in cache for the min pass.
TILE = 4096
#: Interleaved slabs per tile; one "slab column" holds SLABS scores.
SLABS = 16
#: Tiles whose scores are selected together (amortises top-k's per-row cost).
MAX_TILES = 16


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _plan(n_queries: int, n_reference: int, block_bytes: int) -> tuple[int, int]:
    """Query rows per block, and tiles of reference columns per block."""
    tiles = min(MAX_TILES, -(-n_reference // TILE))
    rows = block_bytes // (4 * tiles * TILE)
    rows = max(1, min(n_queries, rows - rows % 64 if rows > 64 else rows))
    return rows, tiles


def _slab_minima(tile_scores: torch.Tensor, out: torch.Tensor) -> None:
    """Elementwise minimum over a tile's ``SLABS`` interleaved slabs: (rows, TILE) -> (rows, TILE // SLABS).

    Run right after the tile's GEMM, while its scores are still in cache.
    """
    torch.amin(tile_scores.view(tile_scores.shape[0], SLABS, TILE // SLABS), dim=1, out=out)


def _select(buffer: torch.Tensor, minima: torch.Tensor, n_rows: int, n_tiles: int, k: int):
    """Exact ``k`` smallest scores per row of a block of tiles, and their columns in the block.

    Each tile's columns are cut into ``SLABS`` interleaved slabs, and ``minima`` holds the
    elementwise minimum over the slabs: one value per slab column. A slab column whose
    minimum is not among the ``k`` smallest minima cannot hold a top-k score (``k`` other
    columns each hold a smaller one), so top-k looks only at the minima and then at the
    ``k * SLABS`` scores of the winning slab columns.

    Parameters
    ----------
    buffer : Tensor, shape (max_tiles, max_rows, TILE)
        Scores; unused columns of the last tile hold +inf.
    minima : Tensor, shape (max_tiles, max_rows, TILE // SLABS)
        :func:`_slab_minima` of each tile.
    n_rows, n_tiles : int
        The part of ``buffer`` in use.
    k : int

    Returns
    -------
    values : Tensor, shape (n_rows, k)
    columns : Tensor of int64, shape (n_rows, k)
        Column within the block, ``tile * TILE + column``.
    """
    width = TILE // SLABS
    stride_tile, stride_row = buffer.stride(0), buffer.stride(1)
    flat_minima = minima[:n_tiles, :n_rows].permute(1, 0, 2).reshape(n_rows, n_tiles * width)
    _, winners = torch.topk(flat_minima, k, dim=1, largest=False, sorted=False)
    tile, column = winners // width, winners % width
    rows = torch.arange(n_rows, device=buffer.device)[:, None, None]
    slab = torch.arange(SLABS, device=buffer.device) * width
    flat = (tile * stride_tile)[:, :, None] + rows * stride_row + (column[:, :, None] + slab)
    values, position = torch.topk(buffer.reshape(-1)[flat.reshape(n_rows, -1)], k, dim=1, largest=False, sorted=False)
    block_column = (tile * TILE)[:, :, None] + column[:, :, None] + slab
    return values, torch.gather(block_column.reshape(n_rows, -1), 1, position)


def _mask_self(scores: torch.Tensor, q0: int, q1: int, c0: int, c1: int) -> None:
    """Leave-one-out: a point is not its own neighbour."""
    if c0 < q1 and q0 < c1:
        diagonal = torch.arange(max(q0, c0), min(q1, c1), device=scores.device)
        scores[diagonal - q0, diagonal - c0] = math.inf


def _scores(query_block, reference_tile, tile_sq_norm, q0, q1, c0, c1, leave_one_out) -> torch.Tensor:
    """``||r||^2 - 2 q.r`` for a block: ranks like ``||q - r||^2`` within a row.

    ``||q||^2`` is constant along a row, so it is left out; addmm fuses the norm term
    into the GEMM.
    """
    scores = torch.addmm(tile_sq_norm, query_block, reference_tile.T, alpha=-2.0)
    if leave_one_out:
        _mask_self(scores, q0, q1, c0, c1)
    return scores


def _sorted(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Neighbour indices by increasing distance; equal distances by index (scikit-learn's order)."""
    order = torch.argsort(index, dim=1)
    values, index = torch.gather(values, 1, order), torch.gather(index, 1, order)
    return torch.gather(index, 1, torch.argsort(values, dim=1, stable=True))


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
    ref_t = torch.as_tensor(ref, device=device)
    qry_t = ref_t if leave_one_out else torch.as_tensor(qry, device=device)
    # Centring changes no distance but shrinks the norms, which keeps the ||r||^2 - 2 q.r
    # expansion accurate in float32. Slices are centred as they are used, so no copy of
    # the inputs is made: extra memory is set by block_bytes, not by N.
    # Summed tile by tile: a float64 copy of the whole reference would double its memory.
    centre = (sum(ref_t[c0:c0 + TILE].sum(dim=0, dtype=torch.float64) for c0 in range(0, ref_t.shape[0], TILE))
              / ref_t.shape[0]).to(dtype)

    def centred(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return x[lo:hi].to(dtype) - centre

    n_queries, n_reference = qry_t.shape[0], ref_t.shape[0]
    ref_sq_norm = torch.cat([centred(ref_t, c0, c0 + TILE).square().sum(dim=1)
                             for c0 in range(0, n_reference, TILE)])
    out = torch.empty((n_queries, k), dtype=torch.int64)
    if n_reference <= TILE or k * 2 > (TILE // SLABS):
        # Small reference sets (or very large k): one plain top-k per block of rows.
        rows = max(1, min(n_queries, block_bytes // (4 * n_reference)))
        reference = centred(ref_t, 0, n_reference) if n_reference <= TILE else None
        for q0 in range(0, n_queries, rows):
            q1 = min(q0 + rows, n_queries)
            tile = reference if reference is not None else centred(ref_t, 0, n_reference)
            scores = _scores(centred(qry_t, q0, q1), tile, ref_sq_norm, q0, q1, 0, n_reference, leave_one_out)
            values, index = torch.topk(scores, k, dim=1, largest=False, sorted=False)
            out[q0:q1] = _sorted(values, index).cpu()
        return out.numpy()
    rows, max_tiles = _plan(n_queries, n_reference, block_bytes)
    buffer = torch.empty((max_tiles, rows, TILE), dtype=dtype, device=device)
    minima = torch.empty((max_tiles, rows, TILE // SLABS), dtype=dtype, device=device)
    span = max_tiles * TILE
    for q0 in range(0, n_queries, rows):
        q1 = min(q0 + rows, n_queries)
        n_rows = q1 - q0
        query_block = centred(qry_t, q0, q1)
        best_values = best_index = None
        for r0 in range(0, n_reference, span):
            n_tiles = min(max_tiles, -(-(n_reference - r0) // TILE))
            for tile in range(n_tiles):
                c0 = r0 + tile * TILE
                c1 = min(c0 + TILE, n_reference)
                reference_tile = centred(ref_t, c0, c1)
                if c1 - c0 == TILE:
                    torch.addmm(ref_sq_norm[c0:c1], query_block, reference_tile.T, alpha=-2.0, out=buffer[tile, :n_rows])
                    if leave_one_out:
                        _mask_self(buffer[tile, :n_rows], q0, q1, c0, c1)
                else:
                    buffer[tile, :n_rows, : c1 - c0] = _scores(query_block, reference_tile, ref_sq_norm[c0:c1],
                                                               q0, q1, c0, c1, leave_one_out)
                    buffer[tile, :n_rows, c1 - c0:] = math.inf
                _slab_minima(buffer[tile, :n_rows], minima[tile, :n_rows])
            values, index = _select(buffer, minima, n_rows, n_tiles, k)
            index += r0
            if best_values is not None:
                values, position = torch.topk(torch.cat([best_values, values], 1), k, dim=1, largest=False, sorted=False)
                index = torch.gather(torch.cat([best_index, index], 1), 1, position)
            best_values, best_index = values, index
        out[q0:q1] = _sorted(best_values, best_index).cpu()
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
