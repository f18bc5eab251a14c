"""Fused top-k scans of score tiles on the CPU: a small C kernel, compiled on first use.

After the GEMM has written a tile of squared distances, each point's running top-k must see
the tile. In torch that takes a dozen passes (slab minima, comparisons, gathers, merges); a
scan that compares every score with the point's current k-th distance and, on the rare hit,
offers it to the point's reservoir reads the tile once. The kernel is plain C (no Python
API), compiled with the system's C compiler into pdlib's kernel cache and called through
:mod:`ctypes`, which releases the GIL, so the thread pool of :func:`run_tasks` runs one scan
per core. Where no compiler is found the k-NN falls back to its torch path (:func:`available`
is False).

A candidate enters a reservoir only when its (distance, index) pair is smaller than the
point's threshold pair, and compaction keeps the k smallest pairs, so whatever order the
candidates arrive in, the result is the k smallest (distance, index) pairs: scikit-learn's
order, ties to the smaller index.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

__all__ = ["available", "Reservoirs", "scan_rows", "scan_columns", "run_tasks", "workers"]

_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Each point keeps a reservoir of 2k (distance, index) pairs: its current k smallest in any
   order, then up to k newer candidates. Its threshold is the k-th smallest distance at the
   last compaction; a candidate enters only when strictly smaller. A full reservoir is
   compacted to its k smallest pairs (a quickselect on (distance, index), so among equal
   distances the smaller index is kept) and the threshold updated. */
#define DEFINE_RESERVOIR(T, SUFFIX)                                                          \
static inline int less_##SUFFIX(T a, int64_t ia, T b, int64_t ib) {                          \
    return a < b || (a == b && ia < ib);                                                     \
}                                                                                            \
static void swap_##SUFFIX(T *v, int64_t *ix, int64_t a, int64_t b) {                         \
    T tv = v[a]; v[a] = v[b]; v[b] = tv;                                                     \
    int64_t ti = ix[a]; ix[a] = ix[b]; ix[b] = ti;                                           \
}                                                                                            \
/* Rearranges v[0..n) so that v[0..k) are its k smallest pairs; returns the largest of them  \
   (its index in *largest_index). */                                                         \
static T select_##SUFFIX(T *v, int64_t *ix, int64_t n, int64_t k, int64_t *largest_index) { \
    int64_t lo = 0, hi = n - 1;                                                              \
    while (lo < hi) {                                                                        \
        int64_t mid = lo + (hi - lo) / 2;                                                    \
        if (less_##SUFFIX(v[mid], ix[mid], v[lo], ix[lo])) swap_##SUFFIX(v, ix, mid, lo);    \
        if (less_##SUFFIX(v[hi], ix[hi], v[lo], ix[lo])) swap_##SUFFIX(v, ix, hi, lo);       \
        if (less_##SUFFIX(v[hi], ix[hi], v[mid], ix[mid])) swap_##SUFFIX(v, ix, hi, mid);    \
        T pv = v[mid]; int64_t pi = ix[mid];                                                 \
        int64_t i = lo, j = hi;                                                              \
        while (i <= j) {                                                                     \
            while (less_##SUFFIX(v[i], ix[i], pv, pi)) ++i;                                  \
            while (less_##SUFFIX(pv, pi, v[j], ix[j])) --j;                                  \
            if (i <= j) { swap_##SUFFIX(v, ix, i, j); ++i; --j; }                            \
        }                                                                                    \
        if (k - 1 <= j) hi = j; else if (k - 1 >= i) lo = i; else break;                    \
    }                                                                                        \
    int64_t top = 0;                                                                         \
    for (int64_t q = 1; q < k; ++q) if (less_##SUFFIX(v[top], ix[top], v[q], ix[q])) top = q;  \
    *largest_index = ix[top];                                                                \
    return v[top];                                                                           \
}                                                                                            \
/* A candidate (value, index) with value <= the threshold: kept if it beats the threshold pair. */ \
static inline void offer_##SUFFIX(T *v, int64_t *ix, int64_t *count, T *t, int64_t *ti,      \
                                  int64_t k, T value, int64_t index) {                       \
    if (!less_##SUFFIX(value, index, *t, *ti)) return;                                       \
    v[*count] = value; ix[*count] = index;                                                   \
    if (++*count == 2 * k) { *t = select_##SUFFIX(v, ix, 2 * k, k, ti); *count = k; }        \
}                                                                                            \
/* Compacts every reservoir in [lo, hi) to its k smallest pairs. */                          \
void finish_##SUFFIX(T *best_v, int64_t *best_i, int64_t *counts, T *thresholds,             \
                     int64_t *threshold_index, int64_t k, int64_t lo, int64_t hi) {          \
    for (int64_t r = lo; r < hi; ++r)                                                        \
        if (counts[r] > k) {                                                                 \
            thresholds[r] = select_##SUFFIX(best_v + r * 2 * k, best_i + r * 2 * k, counts[r], k, \
                                            threshold_index + r);                            \
            counts[r] = k;                                                                   \
        }                                                                                    \
}

DEFINE_RESERVOIR(float, f32)
DEFINE_RESERVOIR(double, f64)

/* Does any of the 16 scores s[0..16) beat the row's threshold t (or, for columns, its own
   threshold t[0..16))? One vectorised test per 16 scores; the scalar loop runs only on a hit. */
#if defined(__SSE2__)
static inline int any16_row_f32(const float *s, float t) {
    __m128 m = _mm_min_ps(_mm_min_ps(_mm_loadu_ps(s), _mm_loadu_ps(s + 4)),
                          _mm_min_ps(_mm_loadu_ps(s + 8), _mm_loadu_ps(s + 12)));
    return _mm_movemask_ps(_mm_cmple_ps(m, _mm_set1_ps(t)));
}
static inline int any16_col_f32(const float *s, const float *t) {
    __m128 c = _mm_or_ps(_mm_or_ps(_mm_cmple_ps(_mm_loadu_ps(s), _mm_loadu_ps(t)),
                                   _mm_cmple_ps(_mm_loadu_ps(s + 4), _mm_loadu_ps(t + 4))),
                         _mm_or_ps(_mm_cmple_ps(_mm_loadu_ps(s + 8), _mm_loadu_ps(t + 8)),
                                   _mm_cmple_ps(_mm_loadu_ps(s + 12), _mm_loadu_ps(t + 12))));
    return _mm_movemask_ps(c);
}
static inline float min16_f32(const float *s) {
    __m128 m = _mm_min_ps(_mm_min_ps(_mm_loadu_ps(s), _mm_loadu_ps(s + 4)),
                          _mm_min_ps(_mm_loadu_ps(s + 8), _mm_loadu_ps(s + 12)));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_min_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtss_f32(m);
}
#endif

/* The same tests in plain C: float64 always, float32 where SSE2 is missing. */
#define DEFINE_SCALAR_TESTS(T, SUFFIX)                                                       \
static inline T min16_##SUFFIX(const T *s) {                                                 \
    T m = s[0];                                                                              \
    for (int q = 1; q < 16; ++q) m = s[q] < m ? s[q] : m;                                    \
    return m;                                                                                \
}                                                                                            \
static inline int any16_row_##SUFFIX(const T *s, T t) { return min16_##SUFFIX(s) <= t; }     \
static inline int any16_col_##SUFFIX(const T *s, const T *t) {                               \
    int any = 0;                                                                             \
    for (int q = 0; q < 16; ++q) any |= s[q] <= t[q];                                        \
    return any;                                                                              \
}

#if !defined(__SSE2__)
DEFINE_SCALAR_TESTS(float, f32)
#endif
DEFINE_SCALAR_TESTS(double, f64)

#define DEFINE_SCANS(T, SUFFIX)                                                              \
/* Rows [lo, hi) of a tile: row r is point row0 + r, column j is candidate col0 + j. A point  \
   with an empty reservoir starts from a bound on its row's k-th smallest score. */          \
void scan_rows_##SUFFIX(const T *scores, int64_t ld, int64_t lo, int64_t hi, int64_t n_cols, \
                        T *best_v, int64_t *best_i, int64_t *counts, T *thresholds,          \
                        int64_t *threshold_index, int64_t k, int64_t row0, int64_t col0,     \
                        int32_t skip_self) {                                                 \
    T *group_v = NULL; int64_t *group_i = NULL;                                              \
    for (int64_t r = lo; r < hi; ++r) {                                                      \
        const T *s = scores + r * ld;                                                        \
        int64_t p = row0 + r;                                                                \
        T *v = best_v + p * 2 * k;                                                           \
        int64_t *ix = best_i + p * 2 * k;                                                    \
        int64_t self = skip_self ? p - col0 : -1;                                            \
        if (counts[p] == 0 && n_cols / 16 >= k) {                                          \
            /* Cold point: the k-th smallest of the minima of its row's groups of 16 bounds  \
               its k-th smallest score from above (k groups each hold a score below it). */  \
            if (group_v == NULL) {                                                           \
                group_v = malloc((n_cols / 16) * sizeof(T));                                 \
                group_i = malloc((n_cols / 16) * sizeof(int64_t));                           \
                if (group_v == NULL || group_i == NULL) abort();                             \
            }                                                                                \
            int64_t n_groups = n_cols / 16;                                                  \
            for (int64_t g = 0; g < n_groups; ++g) {                                         \
                if (self >= 16 * g && self < 16 * g + 16) {                                  \
                    T m = (T)INFINITY;                                                       \
                    for (int64_t q = 16 * g; q < 16 * g + 16; ++q)                           \
                        if (s[q] < m && q != self) m = s[q];                                 \
                    group_v[g] = m;                                                          \
                } else {                                                                     \
                    group_v[g] = min16_##SUFFIX(s + 16 * g);                                 \
                }                                                                            \
                group_i[g] = g;                                                              \
            }                                                                                \
            int64_t ignored;                                                                 \
            thresholds[p] = select_##SUFFIX(group_v, group_i, n_groups, k, &ignored);        \
            threshold_index[p] = INT64_MAX;                                                  \
        }                                                                                    \
        T t = thresholds[p];                                                                 \
        int64_t *ti = threshold_index + p;                                                   \
        int64_t j = 0;                                                                       \
        for (; j + 16 <= n_cols; j += 16) {                                                  \
            if (!any16_row_##SUFFIX(s + j, t)) continue;                                     \
            for (int64_t q = j; q < j + 16; ++q)                                             \
                if (s[q] <= t && q != self) offer_##SUFFIX(v, ix, counts + p, &t, ti, k, s[q], col0 + q); \
        }                                                                                    \
        for (; j < n_cols; ++j)                                                              \
            if (s[j] <= t && j != self) offer_##SUFFIX(v, ix, counts + p, &t, ti, k, s[j], col0 + j); \
        if (counts[p] > k) { t = select_##SUFFIX(v, ix, counts[p], k, ti); counts[p] = k; }  \
        thresholds[p] = t;                                                                   \
    }                                                                                        \
    free(group_v); free(group_i);                                                            \
}                                                                                            \
                                                                                             \
/* Columns [lo, hi) of a tile: column j is point col0 + j, row i is candidate row0 + i. */   \
void scan_columns_##SUFFIX(const T *scores, int64_t ld, int64_t n_rows, int64_t lo,          \
                           int64_t hi, T *best_v, int64_t *best_i, int64_t *counts,          \
                           T *thresholds, int64_t *threshold_index, int64_t k, int64_t row0, \
                           int64_t col0) {                                                   \
    T *t = thresholds + col0;                                                                \
    int64_t *ti = threshold_index + col0;                                                    \
    for (int64_t i = 0; i < n_rows; ++i) {                                                   \
        const T *s = scores + i * ld;                                                        \
        int64_t j = lo;                                                                      \
        for (; j + 16 <= hi; j += 16) {                                                      \
            if (!any16_col_##SUFFIX(s + j, t + j)) continue;                                 \
            for (int64_t q = j; q < j + 16; ++q)                                             \
                if (s[q] <= t[q])                                                            \
                    offer_##SUFFIX(best_v + (col0 + q) * 2 * k, best_i + (col0 + q) * 2 * k, \
                                   counts + col0 + q, t + q, ti + q, k, s[q], row0 + i);     \
        }                                                                                    \
        for (; j < hi; ++j)                                                                  \
            if (s[j] <= t[j])                                                                \
                offer_##SUFFIX(best_v + (col0 + j) * 2 * k, best_i + (col0 + j) * 2 * k,     \
                               counts + col0 + j, t + j, ti + j, k, s[j], row0 + i);         \
    }                                                                                        \
}

DEFINE_SCANS(float, f32)
DEFINE_SCANS(double, f64)
"""

#: Compiler invocation; plain -O3 (no -march=native) so a cached library runs on any x86-64/arm64 host.
_FLAGS = ["-O3", "-fPIC", "-shared", "-std=c99"]
_lock = threading.Lock()
_library: ctypes.CDLL | None | bool = None  # None: not tried yet; False: unavailable
_pool: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start a new pool on next use."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _kernel_dir() -> Path:
    base = os.environ.get("PDLIB_KERNEL_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pdlib" / "kernels"


def _compile() -> ctypes.CDLL | bool:
    if os.environ.get("PDLIB_KNN_KERNEL", "auto") == "torch":
        return False
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None or sys.platform == "win32":
        return False
    key = hashlib.sha256((_SOURCE + " ".join(_FLAGS) + compiler + sys.platform + os.uname().machine).encode())
    target = _kernel_dir() / f"scan-{key.hexdigest()[:16]}.so"
    if not target.exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
                source = Path(scratch) / "scan.c"
                source.write_text(_SOURCE)
                built = Path(scratch) / "scan.so"
                subprocess.run([compiler, *_FLAGS, str(source), "-o", str(built)], check=True,
                               capture_output=True, timeout=120)
                os.replace(built, target)  # atomic: concurrent first uses never load a half-written file
        except (OSError, subprocess.SubprocessError) as error:
            warnings.warn(f"pdlib could not compile its k-NN scan kernel ({error}); using the slower torch path",
                          RuntimeWarning, stacklevel=3)
            return False
    library = ctypes.CDLL(str(target))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for suffix in ("f32", "f64"):
        getattr(library, f"scan_rows_{suffix}").argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, i64,
                                                            i64, i64, ctypes.c_int32]
        getattr(library, f"scan_columns_{suffix}").argtypes = [ptr, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr,
                                                               i64, i64, i64]
        getattr(library, f"finish_{suffix}").argtypes = [ptr, ptr, ptr, ptr, ptr, i64, i64, i64]
    return library


def available(device: torch.device) -> bool:
    """Whether the compiled scans can be used for tensors on ``device`` (CPU only)."""
    global _library
    if device.type != "cpu":
        return False
    with _lock:
        if _library is None:
            _library = _compile()
    return _library is not False


def workers() -> int:
    """Threads the scans use: torch's intra-op thread count."""
    return max(1, torch.get_num_threads())


def run_tasks(tasks) -> None:
    """Run callables on the scan thread pool (one thread per core) and wait for all of them."""
    global _pool
    tasks = list(tasks)
    if len(tasks) == 1:
        tasks[0]()
        return
    if _pool is None or _pool._max_workers != workers():
        _pool = ThreadPoolExecutor(workers(), thread_name_prefix="pdlib-scan")
    for future in [_pool.submit(task) for task in tasks]:
        future.result()


def _suffix(tensor: torch.Tensor) -> str:
    return "f64" if tensor.dtype == torch.float64 else "f32"


class Reservoirs:
    """Running top-k of ``n`` points for the scans: reservoirs of 2k pairs, counts and thresholds.

    Parameters
    ----------
    n, k : int
    dtype : torch.dtype
        float32 or float64, that of the score tiles.
    """

    def __init__(self, n: int, k: int, dtype: torch.dtype):
        self.k = k
        self.values = torch.full((n, 2 * k), torch.inf, dtype=dtype)
        self.index = torch.zeros((n, 2 * k), dtype=torch.int64)
        self.counts = torch.zeros(n, dtype=torch.int64)
        self.thresholds = torch.full((n,), torch.inf, dtype=dtype)
        self.threshold_index = torch.full((n,), torch.iinfo(torch.int64).max, dtype=torch.int64)
        self._pointers = (self.values.data_ptr(), self.index.data_ptr(), self.counts.data_ptr(),
                          self.thresholds.data_ptr(), self.threshold_index.data_ptr())

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each point's k smallest (distance, index) pairs, unordered: two (n, k) tensors."""
        function = getattr(_library, f"finish_{_suffix(self.values)}")
        n = self.values.shape[0]
        step = -(-n // workers())
        run_tasks(lambda lo=lo: function(*self._pointers, self.k, lo, min(lo + step, n)) for lo in range(0, n, step))
        return self.values[:, : self.k], self.index[:, : self.k]


def scan_rows(scores: torch.Tensor, reservoirs: Reservoirs, row0: int, col0: int, skip_self: bool) -> None:
    """Offer each row of ``scores`` to the running top-k of point ``row0 + row``, in the calling thread.

    Parameters
    ----------
    scores : Tensor, shape (n_rows, n_cols), rows contiguous
        Squared distances; column ``j`` is candidate ``col0 + j``.
    reservoirs : Reservoirs
    row0, col0 : int
    skip_self : bool
        Leave-one-out: never take candidate ``row0 + row`` for that row.
    """
    function = getattr(_library, f"scan_rows_{_suffix(scores)}")
    n_rows, n_cols = scores.shape
    function(scores.data_ptr(), scores.stride(0), 0, n_rows, n_cols, *reservoirs._pointers, reservoirs.k, row0, col0,
             int(skip_self))


def scan_columns(scores: torch.Tensor, reservoirs: Reservoirs, row0: int, col0: int, lo: int = 0,
                 hi: int | None = None) -> None:
    """Offer columns ``[lo, hi)`` of ``scores`` to the running top-k of point ``col0 + column``, in the calling thread.

    Parameters
    ----------
    scores : Tensor, shape (n_rows, n_cols), rows contiguous
        Squared distances; row ``i`` is candidate ``row0 + i``.
    reservoirs : Reservoirs
    row0, col0 : int
    lo, hi : int
        The columns to scan (default all); cores scanning disjoint column ranges never
        touch the same point's top-k.
    """
    function = getattr(_library, f"scan_columns_{_suffix(scores)}")
    hi = scores.shape[1] if hi is None else hi
    function(scores.data_ptr(), scores.stride(0), scores.shape[0], lo, hi, *reservoirs._pointers, reservoirs.k, row0,
             col0)
