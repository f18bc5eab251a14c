"""Helpers shared by the benchmarks: data, the machine's matmul rate, peak memory, near-ties,
tables.

Not part of pdlib: the benchmarks import it as ``_common`` (their own folder is on ``sys.path``
when they are run as scripts).
"""

from __future__ import annotations

import gzip
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

#: Debian's ``dataset-fashion-mnist`` package: the fallback when pdlib cannot load the data.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: Relative float64 gap (see :func:`boundary_gaps`) below which two exact k-NN results may differ.
TIE_TOLERANCE = 1e-5
#: Fashion-MNIST's per-channel mean and std (of pixels / 255), the normalisation pdlib uses.
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530


# --------------------------------------------------------------------------- data


def fashion_mnist(split: str):
    """Fashion-MNIST ``split`` ("train" or "test") as normalised (n, 1, 28, 28) float32 tensor and
    int64 labels.

    Uses ``pdlib.load_dataset``; reads Debian's IDX files directly if pdlib's loader is missing or
    fails.
    """
    import torch

    try:
        from pdlib import load_dataset

        data = load_dataset("fashion_mnist", split)
        return data.inputs, data.labels.numpy().astype(np.int64)
    except (ImportError, OSError, ValueError):
        prefix = "train" if split == "train" else "t10k"
        pixels = _read_idx(DEBIAN_FASHION_MNIST / f"{prefix}-images-idx3-ubyte.gz")
        labels = _read_idx(DEBIAN_FASHION_MNIST / f"{prefix}-labels-idx1-ubyte.gz")
        inputs = (
            torch.from_numpy(pixels.astype(np.float32)) / 255.0 - FASHION_MNIST_MEAN
        ) / FASHION_MNIST_STD
        return inputs[:, None], labels.astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    n_dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)


# --------------------------------------------------------------------------- machine


def matmul_gflops(n: int = 4096, repeats: int = 3) -> float:
    """This machine's fp32 matmul rate: best of ``repeats`` torch (n x n) @ (n x n) products, in
    GFLOP/s."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def limit_threads(n: int | None) -> None:
    """Use ``n`` threads in torch, OpenMP (scikit-learn) and BLAS; None leaves the libraries'
    defaults.

    On a shared machine fewer threads than cores can be faster: an OpenMP parallel region waits
    for its slowest thread, and a thread that is not scheduled stalls every small operation.
    """
    if n is None:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine_summary() -> str:
    """Cores, CPU model, library threads and load average, for the header of a benchmark's
    output."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} CPU cores ({model}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, load average (1/5/15 min) {load_average()}"
    )


# --------------------------------------------------------------------------- memory


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0, ``/proc/self/clear_refs``); False if
    not possible.

    Without it, a transient peak while loading the data would hide the memory a method uses
    afterwards.
    """
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """RSS high-water mark of this process (VmHWM), in bytes.

    ``VmHWM`` from ``/proc/self/status`` rather than ``getrusage().ru_maxrss``: in a subprocess
    ru_maxrss never drops below the *parent's* peak RSS (Linux keeps the larger of the two
    across vfork + exec, and ``clear_refs`` does not reset it), so a lean worker started from a
    parent that once held 500 MB reports "0 MB extra". ru_maxrss is the fallback off Linux.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- k-NN checks


def vote(neighbour_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Uniform majority vote per row of ``neighbour_labels`` (n, k); ties go to the smallest
    class."""
    n = neighbour_labels.shape[0]
    flat = (np.arange(n)[:, None] * n_classes + neighbour_labels).ravel()
    return np.bincount(flat, minlength=n * n_classes).reshape(n, n_classes).argmax(axis=1)


def boundary_gaps(
    reference: np.ndarray, queries: np.ndarray | None, rows, k: int, chunk: int = 8192
) -> np.ndarray:
    """Gap between the k-th and (k+1)-th nearest squared distance of some query rows, computed in
    float64.

    The gap is relative to the scale of float32 rounding in a squared-distance expansion,
    ``||q - c||^2 + ||r_(k+1) - c||^2`` with ``c`` the reference mean; a disagreement between two
    exact k-NN implementations at a row whose relative gap is below ~1e-5 is a float near-tie
    (the neighbour sets may legitimately differ there), not an error.

    Parameters
    ----------
    reference : ndarray, shape (n_reference, d)
    queries : ndarray, shape (n_queries, d), or None for leave-one-out (the point itself is skipped)
    rows : sequence of int
        Query rows to check (the disagreeing ones: this is O(len(rows) * n_reference * d)).
    k : int

    Returns
    -------
    relative_gap : ndarray of float64, shape (len(rows),)
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return np.zeros(0)
    centre = reference.mean(axis=0, dtype=np.float64)
    points = (reference if queries is None else queries)[rows].astype(np.float64) - centre
    point_sq = (points**2).sum(axis=1)
    sq = np.empty((rows.size, reference.shape[0]))
    ref_sq = np.empty(reference.shape[0])
    for lo in range(0, reference.shape[0], chunk):
        block = reference[lo : lo + chunk].astype(np.float64) - centre
        ref_sq[lo : lo + chunk] = (block**2).sum(axis=1)
        sq[:, lo : lo + chunk] = (
            ref_sq[lo : lo + chunk] - 2.0 * points @ block.T + point_sq[:, None]
        )
    if queries is None:
        sq[np.arange(rows.size), rows] = np.inf  # leave-one-out: not its own neighbour
    nearest = np.argpartition(sq, (k - 1, k), axis=1)[:, [k - 1, k]]
    d_k, d_k1 = np.take_along_axis(sq, nearest, axis=1).T
    return (d_k1 - d_k) / (point_sq + ref_sq[nearest[:, 1]])


# --------------------------------------------------------------------------- output


def markdown_table(headers, rows, align=None) -> str:
    """A GitHub markdown table; ``align`` is a string of 'l'/'r' per column (default: first left,
    rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool, text: str) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {text}"
