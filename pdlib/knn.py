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

#: Bytes of scratch memory for one block of scores; peak extra memory is at most about twice
#: this (the scores, and a centred copy of the reference when one fits in this much) plus
#: the float32 copies of the inputs and the running top-k (N x k), independent of N^2.
DEFAULT_BLOCK_BYTES = 256 * 2**20
#: Reference columns per GEMM: one tile of scores stays in cache for the min pass.
TILE = 4096
#: Columns per slab: each tile is cut into ``TILE // SLABS`` slabs of ``SLABS`` adjacent columns
#: (128 bytes in float32, so reading a slab back touches two cache lines).
SLABS = 32
#: Tiles whose scores are selected together (amortises top-k's per-row cost).
MAX_TILES = 16
#: Leave-one-out computes each pair of points once (see :func:`_symmetric`) from this many
#: features on; below it the transposes and the extra selections cost about what the
#: GEMM work they save does. Its tiles hold about SYMMETRIC_TILE points, half that from
#: 1024 features on (smaller diagonal tiles, computed in full, for a little more
#: selection work per GEMM flop).
SYMMETRIC_MIN_DIM = 384
SYMMETRIC_TILE = 4096


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _plan(n_queries: int, n_reference: int, block_bytes: int) -> tuple[int, int]:
    """Query rows per block, and tiles of reference columns per block."""
    tiles = min(MAX_TILES, -(-n_reference // TILE))
    rows = block_bytes // (4 * tiles * TILE)
    rows = max(1, min(n_queries, rows - rows % 64 if rows > 64 else rows))
    return rows, tiles


def _slab_minima(tile_scores: torch.Tensor, out: torch.Tensor) -> None:
    """Minimum of each slab of ``SLABS`` adjacent columns: (rows, width) -> (rows, width // SLABS).

    Run right after the tile's GEMM, while its scores are still in cache.
    """
    torch.amin(tile_scores.view(tile_scores.shape[0], -1, SLABS), dim=2, out=out)


def _select(buffer: torch.Tensor, minima: torch.Tensor, n_rows: int, n_tiles: int, k: int):
    """Exact ``k`` smallest scores per row of a block of tiles, and their columns in the block.

    Each tile's columns are cut into slabs of ``SLABS`` adjacent columns, and ``minima``
    holds each slab's minimum. A slab whose minimum is not among the ``k`` smallest minima
    cannot hold a top-k score (``k`` other slabs each hold a smaller one), so top-k looks
    only at the minima and then at the ``k * SLABS`` scores of the winning slabs, which are
    contiguous in memory.

    Parameters
    ----------
    buffer : Tensor, shape (max_tiles, max_rows, width), contiguous
        Scores; unused columns of the last tile hold +inf. ``width`` is a multiple of SLABS.
    minima : Tensor, shape (max_tiles, max_rows, width // SLABS)
        :func:`_slab_minima` of each tile.
    n_rows, n_tiles : int
        The part of ``buffer`` in use.
    k : int

    Returns
    -------
    values : Tensor, shape (n_rows, k)
    columns : Tensor of int64, shape (n_rows, k)
        Column within the block, ``tile * width + column``.
    """
    width = buffer.shape[2]
    per_tile = width // SLABS
    flat_minima = minima[:n_tiles, :n_rows].permute(1, 0, 2).reshape(n_rows, n_tiles * per_tile)
    _, winners = torch.topk(flat_minima, k, dim=1, largest=False, sorted=False)
    tile = winners // per_tile
    slab = winners - tile * per_tile
    # Index of each winning slab in buffer viewed as (-1, SLABS): strides are multiples of SLABS.
    row_offset = torch.arange(n_rows, device=buffer.device) * (buffer.stride(1) // SLABS)
    flat = tile * (buffer.stride(0) // SLABS) + slab + row_offset[:, None]
    candidates = buffer.view(-1, SLABS).index_select(0, flat.view(-1)).view(n_rows, k * SLABS)
    values, position = torch.topk(candidates, k, dim=1, largest=False, sorted=False)
    first_column = torch.gather(tile * width + slab * SLABS, 1, position // SLABS)
    return values, first_column + position % SLABS


def _merge(best_values, best_index, lo: int, hi: int, values, index) -> None:
    """Keep the ``k`` smallest of the running best of rows ``lo:hi`` and new candidates."""
    k = best_values.shape[1]
    merged, position = torch.topk(torch.cat([best_values[lo:hi], values], 1), k, dim=1, largest=False, sorted=False)
    best_index[lo:hi] = torch.gather(torch.cat([best_index[lo:hi], index], 1), 1, position)
    best_values[lo:hi] = merged


def _mask_self(scores: torch.Tensor, q0: int, q1: int, c0: int, c1: int) -> None:
    """Leave-one-out: a point is not its own neighbour."""
    if c0 < q1 and q0 < c1:
        diagonal = torch.arange(max(q0, c0), min(q1, c1), device=scores.device)
        scores[diagonal - q0, diagonal - c0] = math.inf


def _sorted(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Neighbour indices by increasing distance; equal distances by index (scikit-learn's order)."""
    order = torch.argsort(index, dim=1)
    values, index = torch.gather(values, 1, order), torch.gather(index, 1, order)
    return torch.gather(index, 1, torch.argsort(values, dim=1, stable=True))


class _Centred:
    """Rows of ``x`` minus ``centre``, in ``dtype``; rows past the end of ``x`` read as zeros.

    Centring changes no distance but shrinks the norms, which keeps the ``||r||^2 - 2 q.r``
    expansion accurate in float32. With ``copy`` all of ``x`` is centred once, into a copy
    of ``n_rows`` rows (the caller bounds its size); otherwise each request is centred into
    one reused scratch buffer of ``n_rows`` rows, so memory stays independent of N (a fresh
    tensor per request would also cost page faults on every block), and a returned slice
    is valid only until the next request.
    """

    def __init__(self, x: torch.Tensor, centre: torch.Tensor, dtype: torch.dtype, copy: bool, n_rows: int):
        self.x, self.centre, self.dtype, self.copy = x, centre, dtype, copy
        n = x.shape[0]
        self.buffer = torch.empty((max(n, n_rows) if copy else n_rows, x.shape[1]), dtype=dtype, device=x.device)
        if copy:
            for lo in range(0, n, TILE):
                torch.sub(x[lo:lo + TILE].to(dtype), centre, out=self.buffer[lo:min(lo + TILE, n)])
            self.buffer[n:] = 0

    def __call__(self, lo: int, hi: int) -> torch.Tensor:
        if self.copy:
            return self.buffer[lo:hi]
        end = min(hi, self.x.shape[0])
        torch.sub(self.x[lo:end].to(self.dtype), self.centre, out=self.buffer[: end - lo])
        self.buffer[end - lo: hi - lo] = 0
        return self.buffer[: hi - lo]


def _squared_norms(reference: _Centred, n: int) -> torch.Tensor:
    """``||r - c||^2`` of each reference point, a tile at a time."""
    step = min(n, TILE, reference.buffer.shape[0])
    scratch = torch.empty((step, reference.x.shape[1]), dtype=reference.dtype, device=reference.x.device)
    norms = []
    for r0 in range(0, n, step):
        rows = reference(r0, min(r0 + step, n))
        norms.append(torch.mul(rows, rows, out=scratch[: rows.shape[0]]).sum(dim=1))
    return torch.cat(norms)


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
    itemsize = 8 if dtype == torch.float64 else 4
    ref_t = torch.as_tensor(ref, device=device)
    qry_t = ref_t if leave_one_out else torch.as_tensor(qry, device=device)
    n_queries, n_reference, dim = qry_t.shape[0], ref_t.shape[0], ref_t.shape[1]
    # Summed tile by tile (torch's float32 sums are cascaded, accurate to a few ulp), the
    # tiles' sums in float64; any point near the mean serves equally well as the centre.
    centre = (sum(ref_t[c0:c0 + TILE].sum(dim=0).to(torch.float64) for c0 in range(0, n_reference, TILE))
              / n_reference).to(dtype)
    small = n_reference <= TILE or k * 2 > TILE // SLABS
    width = None if small or not leave_one_out else _symmetric_width(n_reference, dim, k, block_bytes, itemsize)
    # Tiles of the symmetric path all have `width` columns: the reference is padded with zero rows.
    n_padded = n_reference if width is None else -(-n_reference // width) * width
    # The reference is centred once into a copy when that fits in block_bytes (or when the
    # untiled path needs all of it at once), else tile by tile as it is used.
    cached = small or n_padded * dim * itemsize <= block_bytes
    reference = _Centred(ref_t, centre, dtype, cached, n_padded if cached else (width or TILE))
    ref_sq_norm = _squared_norms(reference, n_reference)

    if small:  # small reference sets (or very large k): one plain top-k per block of rows
        rows = max(1, min(n_queries, block_bytes // (itemsize * n_reference)))
        queries = reference if leave_one_out else _Centred(qry_t, centre, dtype, False, rows)
        scores = torch.empty((rows, n_reference), dtype=dtype, device=device)
        out = torch.empty((n_queries, k), dtype=torch.int64)
        for q0 in range(0, n_queries, rows):
            q1 = min(q0 + rows, n_queries)
            block = torch.addmm(ref_sq_norm, queries(q0, q1), reference(0, n_reference).T, alpha=-2.0,
                                out=scores[: q1 - q0])
            if leave_one_out:
                _mask_self(block, q0, q1, 0, n_reference)
            values, index = torch.topk(block, k, dim=1, largest=False, sorted=False)
            out[q0:q1] = _sorted(values, index).cpu()
        return out.numpy()

    if width is not None:
        best_values, best_index = _symmetric(reference, ref_sq_norm, k, width, block_bytes, itemsize)
    else:
        best_values, best_index = _tiled(reference, qry_t, centre, ref_sq_norm, k, leave_one_out, block_bytes)
    out = torch.empty((n_queries, k), dtype=torch.int64)
    for q0 in range(0, n_queries, TILE):
        out[q0:q0 + TILE] = _sorted(best_values[q0:q0 + TILE], best_index[q0:q0 + TILE]).cpu()
    return out.numpy()


def _tiled(reference, qry_t, centre, ref_sq_norm, k, leave_one_out, block_bytes):
    """Blocks of query rows against spans of up to ``MAX_TILES`` reference tiles; slab pruning."""
    n_reference, dtype, device = reference.x.shape[0], reference.dtype, reference.x.device
    n_queries = qry_t.shape[0]
    rows, max_tiles = _plan(n_queries, n_reference, block_bytes)
    queries = reference if leave_one_out and reference.copy else _Centred(qry_t, centre, dtype, False, rows)
    buffer = torch.empty((max_tiles, rows, TILE), dtype=dtype, device=device)
    minima = torch.empty((max_tiles, rows, TILE // SLABS), dtype=dtype, device=device)
    span = max_tiles * TILE
    best_values = torch.empty((n_queries, k), dtype=dtype, device=device)
    best_index = torch.empty((n_queries, k), dtype=torch.int64, device=device)
    for q0 in range(0, n_queries, rows):
        q1 = min(q0 + rows, n_queries)
        n_rows = q1 - q0
        query_block = queries(q0, q1)
        for r0 in range(0, n_reference, span):
            n_tiles = min(max_tiles, -(-(n_reference - r0) // TILE))
            for tile in range(n_tiles):
                c0 = r0 + tile * TILE
                c1 = min(c0 + TILE, n_reference)
                scores = buffer[tile, :n_rows, : c1 - c0]
                torch.addmm(ref_sq_norm[c0:c1], query_block, reference(c0, c1).T, alpha=-2.0, out=scores)
                if leave_one_out:
                    _mask_self(scores, q0, q1, c0, c1)
                if c1 - c0 < TILE:
                    buffer[tile, :n_rows, c1 - c0:] = math.inf
                _slab_minima(buffer[tile, :n_rows], minima[tile, :n_rows])
            values, index = _select(buffer, minima, n_rows, n_tiles, k)
            index += r0
            if r0 == 0:
                best_values[q0:q1], best_index[q0:q1] = values, index
            else:
                _merge(best_values, best_index, q0, q1, values, index)
    return best_values, best_index


def _symmetric_width(n: int, dim: int, k: int, block_bytes: int, itemsize: int) -> int | None:
    """Tile width for :func:`_symmetric`, or None where it does not pay or does not fit."""
    if dim < SYMMETRIC_MIN_DIM:
        return None
    n_tiles = -(-n // (SYMMETRIC_TILE if dim < 1024 else SYMMETRIC_TILE // 2))
    width = -(-n // n_tiles)
    width = -(-width // SLABS) * SLABS
    if width // SLABS < 2 * k or 2 * width * width * itemsize > block_bytes:
        return None
    return width


def _symmetric(reference, ref_sq_norm, k, width, block_bytes, itemsize):
    """Leave-one-out with each pair of points multiplied once.

    Rows and columns are cut into the same tiles of ``width`` points (the last one padded
    with zero points of infinite norm, which never win). For tiles ``a < b`` one GEMM gives
    ``G = X_a X_b^T``; ``||x_j||^2 - 2 G`` scores tile ``b``'s columns for the rows of tile
    ``a`` (selected with the rest of their span, as in :func:`_tiled`), and
    ``||x_i||^2 - 2 G^T`` scores tile ``a``'s columns for the rows of tile ``b`` (selected
    at once and merged into those rows' running top-k). Only diagonal tiles are computed in
    full, so the GEMM work is about halved.
    """
    n, dtype, device = reference.x.shape[0], reference.dtype, reference.x.device
    n_tiles_all = -(-n // width)
    n_padded = n_tiles_all * width
    norms = torch.full((n_padded,), math.inf, dtype=dtype, device=device)
    norms[:n] = ref_sq_norm
    rows_of = reference if reference.copy else _Centred(reference.x, reference.centre, dtype, False, width)
    # One tile of transposed scores, and up to MAX_TILES tiles of a row block's own span.
    max_tiles = max(1, min(MAX_TILES, n_tiles_all, block_bytes // (width * width * itemsize) - 1))
    buffer = torch.empty((max_tiles, width, width), dtype=dtype, device=device)
    minima = torch.empty((max_tiles, width, width // SLABS), dtype=dtype, device=device)
    transposed = torch.empty((1, width, width), dtype=dtype, device=device)
    transposed_minima = torch.empty((1, width, width // SLABS), dtype=dtype, device=device)
    best_values = torch.full((n_padded, k), math.inf, dtype=dtype, device=device)
    best_index = torch.zeros((n_padded, k), dtype=torch.int64, device=device)
    for a in range(n_tiles_all):
        a0, a1 = a * width, (a + 1) * width
        row_block = rows_of(a0, a1)
        for s in range(a, n_tiles_all, max_tiles):
            n_tiles = min(max_tiles, n_tiles_all - s)
            for tile in range(n_tiles):
                c0, c1 = (s + tile) * width, (s + tile + 1) * width
                scores = buffer[tile]
                if s + tile == a:
                    torch.addmm(norms[c0:c1], row_block, reference(c0, c1).T, alpha=-2.0, out=scores)
                    scores.diagonal().fill_(math.inf)
                else:
                    torch.mm(row_block, reference(c0, c1).T, out=scores)
                    other = transposed[0]
                    other.copy_(scores.T)  # contiguous to contiguous: torch's blocked transpose
                    torch.add(norms[a0:a1], other, alpha=-2.0, out=other)
                    torch.add(norms[c0:c1], scores, alpha=-2.0, out=scores)
                    _slab_minima(other, transposed_minima[0])
                    values, index = _select(transposed, transposed_minima, width, 1, k)
                    _merge(best_values, best_index, c0, c1, values, index + a0)
                _slab_minima(scores, minima[tile])
            values, index = _select(buffer, minima, width, n_tiles, k)
            _merge(best_values, best_index, a0, a1, values, index + s * width)
    return best_values[:n], best_index[:n]


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
