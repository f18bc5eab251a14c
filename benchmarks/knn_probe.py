"""Exact k-NN probes (k = 30): pdlib's torch k-NN against scikit-learn brute force and the previous
engine.

Measured in one run, for every case and method: the wall time of classifying the queries (index
build / fit, neighbour search and vote; data loading excluded; best of ``--repeats`` after one
warm-up call), the ratio to scikit-learn and to the previous engine, and label agreement with
scikit-learn (disagreements that are not float near-ties of the k-th and (k+1)-th distance count
as errors; see ``_common.boundary_gaps``), and the share of pdlib's time its distance GEMM
(``2 * n_queries * n_reference * D`` flop) would take at the machine's fp32 matmul rate (measured
at the start and the end of the run): the rest is ``topk``, tie re-selection and memory traffic.

Methods:

- ``pdlib``: ``pdlib.knn_predict`` (chunked ``addmm`` + ``topk`` in torch);
- ``sklearn``: ``KNeighborsClassifier(30, algorithm="brute", n_jobs=-1)`` (leave-one-out:
  ``kneighbors()`` then the same vote);
- ``previous``: pdlib's engine before the torch rewrite (commit fb679b8: a compiled C scan called
  through ctypes, with its own thread pool), loaded from git history into a temporary folder when
  the repository and a C compiler are available.

Cases (``--scale`` multiplies every N): 54,000 x 10,000 at D = 256 (Gaussian) and D = 784
(Fashion-MNIST pixels: 54,000 training against 10,000 test images), leave-one-out 10,000 x 2,048
(Gaussian), and probe-sized leave-one-out cases of the laptop book: 1,800 points at D = 6,272
(VGG16 width 8, conv1 on 28 x 28), 3,600 at D = 256 (MLP 7 x 256 hidden layer), and 3,600 at D = 10
twice: points spread over the simplex (``loo_softmax``) and the float32 softmax of logits whose
class margin is uniform in [5, 40) (``loo_saturated``). The second is what a trained network's
softmax probe sees on its training points: 61 % of them round to an exact one-hot vector, and 88 %
of the rows tie at the 30th distance, so they take the tie re-selection path (81 % for the softmax
probe of the MLP 7 x 256 in ``prediction_depth.py``).

Usage:
    python benchmarks/knn_probe.py                         # everything (several minutes on 2 cores)
    python benchmarks/knn_probe.py --scale 0.1 --cases d256,loo2048
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    TIE_TOLERANCE,
    boundary_gaps,
    fashion_mnist,
    machine_summary,
    markdown_table,
    matmul_gflops,
    vote,
)

REPO = Path(__file__).resolve().parents[1]
PREVIOUS_COMMIT = "fb679b8"
CASES = {  # name: (n_reference, n_queries or None for leave-one-out, dimension, data)
    "d256": (54000, 10000, 256, "gaussian"),
    "d784": (54000, 10000, 784, "fashion_mnist"),
    "loo2048": (10000, None, 2048, "gaussian"),
    "loo_conv1": (1800, None, 6272, "gaussian"),
    "loo_mlp": (3600, None, 256, "gaussian"),
    "loo_softmax": (3600, None, 10, "simplex"),
    "loo_saturated": (3600, None, 10, "saturated softmax"),
}


def make_case(name: str, scale: float, rng):
    n_ref, n_query, dim, kind = CASES[name]
    n_ref, n_query = (
        max(100, int(n_ref * scale)),
        None if n_query is None else max(50, int(n_query * scale)),
    )
    if kind == "fashion_mnist":
        train_x, train_y = fashion_mnist("train")
        test_x, _ = fashion_mnist("test")
        return (
            train_x[:n_ref].reshape(n_ref, -1).numpy(),
            train_y[:n_ref],
            test_x[:n_query].reshape(n_query, -1).numpy(),
        )
    total = n_ref + (n_query or 0)
    labels = rng.integers(0, 10, total)
    if (
        kind == "saturated softmax"
    ):  # a trained network's training points: most round to one-hot in float32
        logits = (
            rng.standard_normal((total, dim))
            + rng.uniform(5, 40, (total, 1)) * np.eye(dim)[labels % dim]
        )
        points = torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=1).numpy()
    elif kind == "simplex":
        points = rng.dirichlet(np.ones(dim), total)
    else:
        points = rng.standard_normal((total, dim))
    points = points.astype(np.float32)
    return points[:n_ref], labels[:n_ref], (None if n_query is None else points[n_ref:])


def previous_engine():
    """``knn_predict`` of the engine at PREVIOUS_COMMIT, or None where git or a C compiler is
    missing."""
    if not (shutil.which("git") and (shutil.which("cc") or shutil.which("gcc"))):
        return None
    folder = Path(tempfile.mkdtemp(prefix="pdlib-previous-")) / "pdlib_previous"
    folder.mkdir()
    for name in ("knn.py", "_scan.py", "_checks.py"):
        done = subprocess.run(
            ["git", "show", f"{PREVIOUS_COMMIT}:pdlib/{name}"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return None
        (folder / name).write_text(done.stdout.replace("from pdlib", "from pdlib_previous"))
    (folder / "__init__.py").write_text("")
    sys.path.insert(0, str(folder.parent))
    try:
        return importlib.import_module("pdlib_previous.knn").knn_predict
    except ImportError:  # e.g. threadpoolctl missing
        return None


def sklearn_predict(reference, labels, queries, k=30):
    from sklearn.neighbors import KNeighborsClassifier

    neighbours = (
        KNeighborsClassifier(k, algorithm="brute", n_jobs=-1)
        .fit(reference, labels)
        .kneighbors(queries, return_distance=False)
    )
    return vote(labels[neighbours], int(labels.max()) + 1)


def timed(method, reference, labels, queries, repeats: int):
    small = None if queries is None else queries[:50]
    method(reference[:500], labels[:500], small)  # warm-up: first-use costs of the library
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = method(reference, labels, queries)
        best = min(best, time.perf_counter() - start)
    return best, np.asarray(result[0] if isinstance(result, tuple) else result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import pdlib

    methods = {
        "pdlib": lambda r, y, q: pdlib.knn_predict(r, y, q, k=30, device="cpu"),
        "sklearn": sklearn_predict,
    }
    previous = previous_engine()
    if previous is not None:
        methods["previous"] = lambda r, y, q: previous(r, y, q, k=30, device="cpu")
    print(machine_summary())
    peak = [matmul_gflops()]
    print(f"fp32 matmul rate at the start: {peak[0]:.0f} GFLOP/s\n", flush=True)
    header = [
        "case",
        "points",
        "D",
        *(f"{m} s" for m in methods),
        "pdlib vs sklearn",
        "pdlib vs previous",
        "pdlib GEMM share of time",
        "label differences (not near-ties)",
    ]
    rng, rows, results = np.random.default_rng(0), [], {}
    for case in args.cases.split(","):
        reference, labels, queries = make_case(case, args.scale, rng)
        times, predictions = {}, {}
        for name, method in methods.items():
            times[name], predictions[name] = timed(method, reference, labels, queries, args.repeats)
        differ = np.flatnonzero(predictions["pdlib"] != predictions["sklearn"])
        not_ties = int((boundary_gaps(reference, queries, differ, 30) > TIE_TOLERANCE).sum())
        # The distance GEMM's time at the machine's matmul rate, as a share of pdlib's time: what is
        # not GEMM is topk, tie re-selection and memory traffic.
        gemm_flop = 2 * (queries if queries is not None else reference).shape[0] * reference.size
        results[case] = {
            "seconds": times,
            "disagreements": int(len(differ)),
            "not near-ties": not_ties,
            "gemm_gflop": gemm_flop / 1e9,
        }
        rows.append(
            [
                case,
                f"{reference.shape[0]} x {'LOO' if queries is None else queries.shape[0]}",
                reference.shape[1],
                *(f"{times[m]:.3g}" for m in methods),
                f"{times['sklearn'] / times['pdlib']:.2f}x",
                f"{times['previous'] / times['pdlib']:.2f}x" if "previous" in times else "—",
                f"{gemm_flop / 1e9 / peak[0] / times['pdlib']:.0%}",
                f"{len(differ)} ({not_ties})",
            ]
        )
        print(markdown_table(header, rows[-1:]), flush=True)
    peak.append(matmul_gflops())
    print(
        f"\nfp32 matmul rate at the end: {peak[1]:.0f} GFLOP/s (GEMM shares above use the "
        "start's "
        f"{peak[0]:.0f})\n\n" + markdown_table(header, rows)
    )
    if args.json:
        results["matmul_gflops"] = peak
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
