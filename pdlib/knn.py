"""Exact k-nearest-neighbour probes: a blocked squared-distance GEMM plus top-k.

The probe of the paper (Section 2.1) is a k-NN classifier with Euclidean distance,
``k = 30`` and a uniform vote. Here it is exact: no approximate index, no pooling.
Ties between classes go to the smallest class index, scikit-learn's rule, so
``KNeighborsClassifier(k, algorithm="brute")`` is an oracle wherever distances are
not exactly tied.

How it runs:

- Points are centred and augmented (:class:`_Points`) so that one GEMM writes squared
  distances directly; no pass adds the norms afterwards.
- Leave-one-out (the training split of every probe) multiplies each pair of points once:
  tile ``a`` against tile ``b >= a`` serves the points of ``a`` through the rows of the
  product and the points of ``b`` through its columns (:func:`_symmetric`).
- On the CPU each core multiplies its own share of a tile (NumPy's BLAS, one thread per
  core, so no BLAS or OpenMP pool spins between a product and its scan) and reads it once
  with compiled scans (:mod:`pdlib._scan`) that keep every point's running top-k. On CUDA,
  or without a C compiler, torch multiplies and a torch path prunes the tile by slab minima
  and merges the surviving slabs (:func:`_absorb`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from pdlib import _scan
from pdlib._checks import as_embeddings, as_labels, check_k

__all__ = ["knn_predict", "knn_neighbours", "KNNProbe"]

#: Bytes of scratch memory for the distance blocks; peak extra memory is a small multiple of
#: it (score tiles, their slab minima, a centred copy of the points when one fits in this much)
#: plus the running top-k (N x k), independent of N^2.
DEFAULT_BLOCK_BYTES = 256 * 2**20
#: Reference points per score tile (columns of one GEMM). Tiles of TILE x TILE float32 scores
#: (16 MiB) stay in the last-level cache between the GEMM that writes them and the passes that
#: read them, and are large enough for the GEMM to run near the machine's matmul rate.
TILE = 2048
#: Query rows per score tile, at most.
MAX_ROWS = 2048
#: Points per slab. A tile's columns are cut into TILE // SLAB groups; slab g holds columns
#: g, g + TILE // SLAB, g + 2 * TILE // SLAB, ..., so slab minima are an elementwise minimum of
#: SLAB contiguous stripes (one fast vectorised pass), and only slabs whose minimum beats a
#: row's current k-th score are gathered.
SLAB = 4
#: Points with more hit slabs than this in one tile are merged apart from the rest (:func:`_absorb`).
HIT_BUCKET = 16


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _slab_minima(scores: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Minimum of each row's slabs: (rows, width) -> (rows, width // SLAB).

    Slab ``g`` of a row holds its columns ``g + s * (width // SLAB)`` for ``s < SLAB``, so this
    is an elementwise minimum of SLAB contiguous stripes (vectorised, one pass over the scores).
    """
    rows, width = scores.shape
    return torch.amin(scores.view(rows, SLAB, width // SLAB), dim=1, out=out)


def _column_slab_minima(scores: torch.Tensor) -> torch.Tensor:
    """:func:`_slab_minima` of ``scores.T`` without transposing the scores: (rows, width) -> (width, rows // SLAB)."""
    rows, width = scores.shape
    return torch.amin(scores.view(SLAB, rows // SLAB, width), dim=0).T.contiguous()


def _absorb(best_values, best_index, threshold, first, minima, flat_scores, entity_stride, member_stride,
            member_offset) -> None:
    """Merge into the running top-k of some points every slab that can improve it.

    Point ``first + e`` owns row ``e`` of ``minima``; its slab ``g`` has members at positions
    ``p = g + s * n_groups`` (``s < SLAB``) whose scores are
    ``flat_scores[e * entity_stride + p * member_stride]`` and whose indices are
    ``member_offset + p``. A slab whose minimum is not below the point's current k-th score
    (``threshold``) cannot change its top-k and is never read; the others are gathered and
    merged with one top-k per point that has any.

    Parameters
    ----------
    best_values, best_index : Tensor, shape (n_points, k)
        Running k smallest scores and their indices, updated in place.
    threshold : Tensor, shape (n_points,)
        Largest of each row of ``best_values`` (+inf while a row holds fewer than k finite scores).
    first : int
    minima : Tensor, shape (n_entities, n_groups)
    flat_scores : Tensor, 1-D view of the tile's scores
    entity_stride, member_stride, member_offset : int
    """
    n_entities, n_groups = minima.shape
    device = minima.device
    hit = minima < threshold[first:first + n_entities, None]
    entity, group = hit.nonzero(as_tuple=True)  # row-major: grouped by entity, in increasing order
    n_hits = entity.numel()
    if n_hits == 0:
        return
    position = group[:, None] + n_groups * torch.arange(SLAB, device=device)
    values = flat_scores.take((entity * entity_stride)[:, None] + position * member_stride)
    counts = torch.bincount(entity, minlength=n_entities)
    is_owner = counts > 0
    owners = is_owner.nonzero().squeeze(1)
    slot = torch.arange(n_hits, device=device) - (torch.cumsum(counts, 0) - counts).index_select(0, entity)
    owner_of_hit = (torch.cumsum(is_owner, 0) - 1).index_select(0, entity)
    counts = counts.index_select(0, owners)
    index = position + member_offset
    most = int(counts.max())
    if most <= 2 * HIT_BUCKET or most * owners.numel() <= 4 * n_hits:
        _merge(best_values, best_index, threshold, owners + first, most, owner_of_hit, slot, values, index)
        return
    # A few points with many hits (early tiles, dense regions) would pad every point's
    # candidates to their count: they are merged on their own.
    heavy = counts > HIT_BUCKET
    for chosen in (~heavy, heavy):
        rank = torch.cumsum(chosen, 0) - 1
        keep = chosen.index_select(0, owner_of_hit).nonzero().squeeze(1)
        _merge(best_values, best_index, threshold, owners[chosen] + first, int(counts[chosen].max()),
               rank.index_select(0, owner_of_hit.index_select(0, keep)), slot.index_select(0, keep),
               values.index_select(0, keep), index.index_select(0, keep))


def _merge(best_values, best_index, threshold, points, most, owner_of_hit, slot, values, index) -> None:
    """Running top-k of ``points`` merged with their hit slabs (``values``, ``index``: (n_hits, SLAB))."""
    n_owners = points.numel()
    candidate_values = torch.full((n_owners, most, SLAB), math.inf, dtype=values.dtype, device=values.device)
    candidate_index = torch.zeros((n_owners, most, SLAB), dtype=torch.int64, device=values.device)
    candidate_values[owner_of_hit, slot] = values
    candidate_index[owner_of_hit, slot] = index
    pool_values = torch.cat([best_values.index_select(0, points), candidate_values.view(n_owners, -1)], 1)
    pool_index = torch.cat([best_index.index_select(0, points), candidate_index.view(n_owners, -1)], 1)
    kept, where = torch.topk(pool_values, best_values.shape[1], dim=1, largest=False, sorted=False)
    best_values.index_copy_(0, points, kept)
    best_index.index_copy_(0, points, torch.gather(pool_index, 1, where))
    threshold.index_copy_(0, points, kept.amax(dim=1))


def _start(best_values, best_index, threshold, first, minima, flat_scores, entity_stride, member_stride,
           member_offset) -> None:
    """The first tile of some points: its top-k becomes their running top-k.

    Arguments as for :func:`_absorb`. A slab whose minimum is not among a point's ``k``
    smallest slab minima cannot hold one of its ``k`` smallest scores (``k`` other slabs each
    hold a smaller one), so only the ``k`` slabs with the smallest minima are read.
    """
    n_entities, n_groups = minima.shape
    k, device = best_values.shape[1], minima.device
    _, groups = torch.topk(minima, k, dim=1, largest=False, sorted=False)
    position = (groups[:, :, None] + n_groups * torch.arange(SLAB, device=device)).view(n_entities, k * SLAB)
    entity = torch.arange(n_entities, device=device)[:, None] * entity_stride
    values, where = torch.topk(flat_scores[entity + position * member_stride], k, dim=1, largest=False, sorted=False)
    points = slice(first, first + n_entities)
    best_values[points] = values
    best_index[points] = torch.gather(position, 1, where) + member_offset
    threshold[points] = values.amax(dim=1)


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


class _Points:
    """Centred points, augmented so that one GEMM returns squared distances.

    ``left(lo, hi)`` gives rows ``[x - c, ||x - c||^2, 1]`` and ``right(lo, hi)`` gives rows
    ``[-2 (x - c), 1, ||x - c||^2]``, so ``left(i) @ right(j).T = ||x_i - x_j||^2`` up to
    rounding. Centring (``c`` any point near the mean) changes no distance but shrinks the
    norms, which keeps the expansion accurate in float32. Rows past the end of ``x`` are
    zero points of infinite norm, whose distances are +inf (never a neighbour).

    With ``cache`` all of ``x`` is prepared once, into a copy of ``n_rows`` rows (the caller
    bounds its size); otherwise each request is prepared into one reused buffer of
    ``n_rows`` rows, so memory stays independent of N, and a returned tile is valid only
    until the next request on the same side.
    """

    def __init__(self, x: torch.Tensor, centre: torch.Tensor, dtype: torch.dtype, cache: bool, n_rows: int,
                 sides: str = "lr"):
        self.x, self.centre, self.dtype, self.cache = x, centre, dtype, cache
        n, dim = x.shape
        rows = max(n, n_rows) if cache else n_rows
        self.buffers = {side: torch.empty((rows, dim + 2), dtype=dtype, device=x.device) for side in sides}
        if cache:
            for side in sides:
                for lo in range(0, rows, TILE):
                    self._fill(side, lo, min(lo + TILE, rows), self.buffers[side][lo:lo + TILE])

    def _fill(self, side: str, lo: int, hi: int, out: torch.Tensor) -> torch.Tensor:
        dim = self.x.shape[1]
        end = max(lo, min(hi, self.x.shape[0]))
        body = out[: end - lo, :dim]
        torch.sub(self.x[lo:end].to(self.dtype), self.centre, out=body)
        norm_column, one_column = (dim, dim + 1) if side == "l" else (dim + 1, dim)
        torch.linalg.vecdot(body, body, out=out[: end - lo, norm_column])
        out[:, one_column] = 1
        if side == "r":
            body.mul_(-2.0)
        out[end - lo:, :dim] = 0
        out[end - lo:, norm_column] = math.inf
        return out

    def _get(self, side: str, lo: int, hi: int) -> torch.Tensor:
        buffer = self.buffers[side]
        if self.cache:
            return buffer[lo:hi]
        return self._fill(side, lo, hi, buffer[: hi - lo])

    def left(self, lo: int, hi: int) -> torch.Tensor:
        return self._get("l", lo, hi)

    def right(self, lo: int, hi: int) -> torch.Tensor:
        return self._get("r", lo, hi)


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
    small = n_reference <= TILE
    width = None if small or not leave_one_out else _symmetric_width(n_reference, block_bytes, itemsize)
    # Tiles all have the same number of points: the reference is padded with points at infinite distance.
    n_padded = n_reference if small else -(-n_reference // (width or TILE)) * (width or TILE)
    # The reference is prepared once, into a copy, when that fits in block_bytes (or when the
    # untiled path needs all of it at once), else tile by tile as it is used.
    cached = small or 2 * n_padded * (dim + 2) * itemsize <= block_bytes
    reference = _Points(ref_t, centre, dtype, cached, n_padded if cached else (width or TILE),
                        sides="lr" if leave_one_out or small else "r")
    if small:
        rows = max(1, min(n_queries, block_bytes // (itemsize * n_reference)))
    else:
        rows = max(1, min(n_queries, MAX_ROWS, block_bytes // (2 * TILE * itemsize)))
    if leave_one_out and (cached or width is not None):
        queries = reference
    else:
        queries = _Points(qry_t, centre, dtype, n_queries * (dim + 2) * itemsize <= block_bytes, rows, sides="l")

    if small:  # small reference sets: one plain top-k per block of rows
        scores = torch.empty((rows, n_reference), dtype=dtype, device=device)
        out = torch.empty((n_queries, k), dtype=torch.int64)
        for q0 in range(0, n_queries, rows):
            q1 = min(q0 + rows, n_queries)
            block = torch.mm(queries.left(q0, q1), reference.right(0, n_reference).T, out=scores[: q1 - q0])
            if leave_one_out:
                _mask_self(block, q0, q1, 0, n_reference)
            values, index = torch.topk(block, k, dim=1, largest=False, sorted=False)
            out[q0:q1] = _sorted(values, index).cpu()
        return out.numpy()

    if width is not None:
        best_values, best_index = _symmetric(reference, k, width)
    else:
        best_values, best_index = _tiled(reference, queries, k, leave_one_out, rows)
    out = torch.empty((n_queries, k), dtype=torch.int64)
    for q0 in range(0, n_queries, TILE):
        out[q0:q0 + TILE] = _sorted(best_values[q0:q0 + TILE], best_index[q0:q0 + TILE]).cpu()
    return out.numpy()


def _running_top_k(n: int, k: int, dtype, device):
    """Empty running top-k of ``n`` points: values and indices, and each row's largest value (all +inf)."""
    return (torch.full((n, k), math.inf, dtype=dtype, device=device),
            torch.zeros((n, k), dtype=torch.int64, device=device),
            torch.full((n,), math.inf, dtype=dtype, device=device))


def _tiled(reference: _Points, queries: _Points, k: int, leave_one_out: bool, rows: int):
    """Reference tiles of TILE points (outer loop) against blocks of ``rows`` queries, with slab pruning.

    Each reference tile is prepared once; the queries once if they are cached, else block by block.
    """
    n_reference, n_queries = reference.x.shape[0], queries.x.shape[0]
    dtype, device = reference.dtype, reference.x.device
    if _scan.available(device):
        reservoirs = _scan.Reservoirs(n_queries, k, dtype)
        _tiled_on_cores(reference, queries, reservoirs, leave_one_out, rows)
        return reservoirs.result()
    scores_buffer = torch.empty((rows, TILE), dtype=dtype, device=device)
    minima_buffer = torch.empty((rows, TILE // SLAB), dtype=dtype, device=device)
    best_values, best_index, threshold = _running_top_k(n_queries, k, dtype, device)
    cold = k <= TILE // SLAB
    for c0 in range(0, n_reference, TILE):
        c1 = min(c0 + TILE, n_reference)
        tile = reference.right(c0, c0 + TILE)
        for q0 in range(0, n_queries, rows):
            q1 = min(q0 + rows, n_queries)
            scores = torch.mm(queries.left(q0, q1), tile.T, out=scores_buffer[: q1 - q0])
            if leave_one_out:
                _mask_self(scores, q0, q1, c0, c1)
            merge = _start if c0 == 0 and cold else _absorb
            merge(best_values, best_index, threshold, q0, _slab_minima(scores, minima_buffer[: q1 - q0]),
                  scores.view(-1), TILE, 1, c0)
    return best_values, best_index


def _tiled_on_cores(reference: _Points, queries: _Points, reservoirs, leave_one_out: bool, rows: int) -> None:
    """:func:`_tiled` on the CPU: each core multiplies and scans its own share of every block of rows.

    The products go through NumPy's BLAS limited to one thread, one call per core from the
    scan thread pool, so no BLAS or OpenMP thread pool spins between a product and its scan,
    and each core scans the scores it has just written.
    """
    from threadpoolctl import threadpool_limits

    n_reference, n_queries = reference.x.shape[0], queries.x.shape[0]
    parts = _scan.workers()
    share = -(-rows // parts)
    buffers = [np.empty((share, TILE), dtype=np.float64 if reference.dtype == torch.float64 else np.float32)
               for _ in range(parts)]

    def task(left, tile, out, q0, c0):
        np.matmul(left, tile.T, out=out)
        _scan.scan_rows(torch.from_numpy(out), reservoirs, q0, c0, leave_one_out)

    with threadpool_limits(1, user_api="blas"):
        for c0 in range(0, n_reference, TILE):
            tile = reference.right(c0, c0 + TILE).numpy()
            for q0 in range(0, n_queries, rows):
                q1 = min(q0 + rows, n_queries)
                left = queries.left(q0, q1).numpy()
                _scan.run_tasks(
                    (lambda lo=lo, hi=hi, out=out: task(left[lo:hi], tile, out[: hi - lo], q0 + lo, c0))
                    for (lo, hi), out in zip(((lo, min(lo + share, q1 - q0)) for lo in range(0, q1 - q0, share)),
                                             buffers))


def _symmetric_on_cores(points: _Points, reservoirs, width: int, n_tiles: int) -> None:
    """:func:`_symmetric` on the CPU, each core multiplying and scanning its share of every tile pair.

    Every point's first tile is its own (the rows of the diagonal tiles, all done first), then
    the pairs ``a < b``. For a pair, each core multiplies a share of tile ``a``'s rows and scans
    them (tile ``a``'s points); then each core scans a share of the columns through all the
    shares (tile ``b``'s points), so no two cores ever touch the same point's top-k.
    """
    from threadpoolctl import threadpool_limits

    parts = _scan.workers()
    share = -(-width // parts)
    shares = [(lo, min(lo + share, width)) for lo in range(0, width, share)]
    column_step = -(-share // 16) * 16  # whole groups of 16 columns per core
    column_shares = [(lo, min(lo + column_step, width)) for lo in range(0, width, column_step)]
    dtype = np.float64 if points.dtype == torch.float64 else np.float32
    buffers = [torch.from_numpy(np.empty((hi - lo, width), dtype=dtype)) for lo, hi in shares]

    def rows(left, right, out, row0, col0, skip_self):
        np.matmul(left, right.T, out=out.numpy())
        _scan.scan_rows(out, reservoirs, row0, col0, skip_self)

    def columns(a0, b0, lo, hi):
        for (r0, _), out in zip(shares, buffers):
            _scan.scan_columns(out, reservoirs, a0 + r0, b0, lo, hi)

    with threadpool_limits(1, user_api="blas"):
        for a0, b0 in [(a * width, a * width) for a in range(n_tiles)] + [
                (a * width, b * width) for a in range(n_tiles) for b in range(a + 1, n_tiles)]:
            left, right = points.left(a0, a0 + width).numpy(), points.right(b0, b0 + width).numpy()
            _scan.run_tasks(lambda lo=lo, hi=hi, out=out: rows(left[lo:hi], right, out, a0 + lo, b0, a0 == b0)
                            for (lo, hi), out in zip(shares, buffers))
            if b0 > a0:
                _scan.run_tasks(lambda lo=lo, hi=hi: columns(a0, b0, lo, min(hi, width)) for lo, hi in column_shares)


def _symmetric_width(n: int, block_bytes: int, itemsize: int) -> int | None:
    """Tile width for :func:`_symmetric` (a multiple of SLAB), or None where none fits block_bytes."""
    width = min(TILE, int(math.sqrt(block_bytes / (2 * itemsize))) // SLAB * SLAB)
    width = min(width, -(-n // SLAB) * SLAB)
    return width if width >= SLAB and n > width else None


def _symmetric(points: _Points, k: int, width: int):
    """Leave-one-out with each pair of points multiplied once.

    Rows and columns are cut into the same tiles of ``width`` points (the last one padded
    with points at infinite distance). For tiles ``a <= b`` one GEMM gives their squared
    distances ``S``: its rows score tile ``b``'s points for the points of tile ``a``, and its
    columns score tile ``a``'s points for the points of tile ``b``. Only diagonal tiles are
    computed in full, so the GEMM work is about halved.
    """
    n, dtype, device = points.x.shape[0], points.dtype, points.x.device
    n_tiles = -(-n // width)
    if _scan.available(device):
        reservoirs = _scan.Reservoirs(n_tiles * width, k, dtype)
        _symmetric_on_cores(points, reservoirs, width, n_tiles)
        best_values, best_index = reservoirs.result()
        return best_values[:n], best_index[:n]
    scores = torch.empty((width, width), dtype=dtype, device=device)
    minima_buffer = torch.empty((width, width // SLAB), dtype=dtype, device=device)
    best_values, best_index, threshold = _running_top_k(n_tiles * width, k, dtype, device)
    threshold[n:] = -math.inf  # padding points take no neighbours
    cold = k <= width // SLAB
    for a in range(n_tiles):
        a0 = a * width
        row_block = points.left(a0, a0 + width)
        for b in range(a, n_tiles):
            b0 = b * width
            torch.mm(row_block, points.right(b0, b0 + width).T, out=scores)
            if b == a:
                scores.diagonal().fill_(math.inf)
            else:  # the columns: tile a's points as neighbours of tile b's
                merge = _start if a == 0 and cold else _absorb
                merge(best_values, best_index, threshold, b0, _column_slab_minima(scores), scores.view(-1),
                      1, width, a0)
            merge = _start if b == a == 0 and cold else _absorb
            merge(best_values, best_index, threshold, a0, _slab_minima(scores, minima_buffer), scores.view(-1),
                  width, 1, b0)
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
