"""Exact k-NN probes (k = 30): pdlib against scikit-learn brute force and FAISS IndexFlatL2.

What is measured, for every case and method, each method in a fresh subprocess:

- wall time of classifying the queries: index build / fit, the neighbour search and the vote
  (imports and data loading excluded);
- achieved GFLOP/s, counting only the distance GEMM, 2 * n_queries * n_reference * D flops
  (leave-one-out: n_queries = n_reference), and that rate as a fraction of this machine's fp32
  matmul rate, a 4096 x 4096 @ 4096 x 4096 torch matmul, best of 3, measured in the same run
  (before and after the cases; the higher of the two is used);
- peak extra memory: RSS high-water mark minus the RSS once the data is loaded and the method's
  library imported; the high-water mark is reset after loading (``/proc/self/clear_refs``) so
  that a loading peak cannot hide the method's own, and read as VmHWM, not ru_maxrss, which in
  a subprocess is floored at the parent's peak (see ``_common.peak_rss_bytes``);
- label agreement with scikit-learn (fraction of identical predictions), and the number of
  disagreements NOT explained by a float near-tie: for each disagreeing row the k-th and
  (k+1)-th squared distances are recomputed in float64, and a gap below 1e-5 of
  ``||q - c||^2 + ||r_(k+1) - c||^2`` (c = reference mean; the scale of float32 rounding in
  the distance expansion) counts as a near-tie.

Cases: reference 54,000 x queries 10,000 at D = 256 and 2048 (Gaussian float32 data, random
labels in 10 classes) and D = 784 (Fashion-MNIST normalised pixels: the first 54,000 training
images against the first 10,000 test images), plus leave-one-out on 10,000 x 2048 (Gaussian).
``--scale`` multiplies every N. Then a sweep of pdlib's ``block_bytes`` on one case (d256 by
default), since the block shape sets the GEMM's shape and the per-block overheads.

Baselines: ``KNeighborsClassifier(30, algorithm="brute", n_jobs=-1)`` (``predict``; leave-one-out
``kneighbors()`` and a vote with ties to the smallest class) and ``faiss.IndexFlatL2`` (exact;
leave-one-out: search k + 1 and drop the point itself), each followed by the same vote.

Targets (printed as PASS/FAIL): pdlib >= 80 % of the matmul rate at every D >= 256; pdlib at
least as fast as FAISS and >= 1.5x faster than scikit-learn; labels identical to scikit-learn's
except at near-ties; extra memory <= 1 GB.

Usage:
    python benchmarks/knn_probe.py                      # everything, full size (several minutes)
    python benchmarks/knn_probe.py --scale 0.1 --cases d256,loo2048 --sweep-case none   # quick check
    python benchmarks/knn_probe.py --json results.json --profile d2048
    python benchmarks/knn_probe.py --threads 1    # on a busy machine: one thread per library
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    TIE_TOLERANCE,
    boundary_gaps,
    current_rss_bytes,
    fashion_mnist,
    limit_threads,
    load_average,
    machine_summary,
    markdown_table,
    matmul_gflops,
    peak_rss_bytes,
    reset_peak_rss,
    verdict,
    vote,
)

K = 30
N_CLASSES = 10
CASES = {
    # name: (n_reference, n_queries or None for leave-one-out, dimension, data)
    "d256": (54_000, 10_000, 256, "gaussian"),
    "d784": (54_000, 10_000, 784, "fashion_mnist"),
    "d2048": (54_000, 10_000, 2048, "gaussian"),
    "loo2048": (10_000, None, 2048, "gaussian"),
}
METHODS = ("pdlib", "faiss", "sklearn")
TARGET_FRACTION, TARGET_VS_SKLEARN, TARGET_MEMORY_MB = 0.80, 1.5, 1024


def case_shape(case: str, scale: float) -> tuple[int, int | None, int, str]:
    n_reference, n_queries, dim, source = CASES[case]
    n_reference = max(K + 2, round(n_reference * scale))
    n_queries = None if n_queries is None else max(1, round(n_queries * scale))
    return n_reference, n_queries, dim, source


def case_label(case: str, scale: float) -> str:
    n_reference, n_queries, dim, source = case_shape(case, scale)
    what = "leave-one-out" if n_queries is None else f"x {n_queries:,}"
    return f"{case}: {n_reference:,} {what}, D={dim}, {source.replace('_', '-')}"


def gemm_flops(case: str, scale: float) -> float:
    n_reference, n_queries, dim, _ = case_shape(case, scale)
    return 2.0 * (n_reference if n_queries is None else n_queries) * n_reference * dim


def make_data(case: str, scale: float):
    """(reference float32 (n, D), labels int64 (n,), queries float32 (m, D) or None); deterministic."""
    n_reference, n_queries, dim, source = case_shape(case, scale)
    if source == "fashion_mnist":
        train_x, train_y = fashion_mnist("train")
        reference = np.ascontiguousarray(train_x[:n_reference].flatten(1).numpy())
        queries = np.ascontiguousarray(fashion_mnist("test")[0][:n_queries].flatten(1).numpy())
        return reference, train_y[:n_reference].copy(), queries
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((n_reference, dim), dtype=np.float32)
    labels = rng.integers(0, N_CLASSES, n_reference)
    queries = None if n_queries is None else rng.standard_normal((n_queries, dim), dtype=np.float32)
    return reference, labels, queries


# --------------------------------------------------------------------------- the methods


def run_pdlib(reference, labels, queries, block_bytes=None):
    import pdlib

    extra = {} if block_bytes is None else {"block_bytes": block_bytes}
    predictions, _ = pdlib.knn_predict(reference, labels, queries, k=K, n_classes=N_CLASSES, device="cpu", **extra)
    return predictions


def run_faiss(reference, labels, queries):
    import faiss

    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    if queries is None:  # leave-one-out: one neighbour more, then move the point itself to the end and drop it
        _, neighbours = index.search(reference, K + 1)
        is_self = neighbours == np.arange(len(reference))[:, None]
        neighbours = np.take_along_axis(neighbours, np.argsort(is_self, axis=1, kind="stable"), axis=1)[:, :K]
    else:
        _, neighbours = index.search(queries, K)
    return vote(labels[neighbours], N_CLASSES)


def run_sklearn(reference, labels, queries):
    from sklearn.neighbors import KNeighborsClassifier

    classifier = KNeighborsClassifier(K, algorithm="brute", n_jobs=-1).fit(reference, labels)
    if queries is None:
        return vote(labels[classifier.kneighbors(return_distance=False)], N_CLASSES)
    return classifier.predict(queries)


RUNNERS = {"pdlib": run_pdlib, "faiss": run_faiss, "sklearn": run_sklearn}
IMPORTS = {"pdlib": "pdlib", "faiss": "faiss", "sklearn": "sklearn.neighbors"}


def worker(spec: dict) -> None:
    """Subprocess body: import, load the data, reset the RSS peak, run one method, save predictions and stats."""
    import importlib

    importlib.import_module(IMPORTS[spec["method"]])
    limit_threads(spec.get("threads"))
    if spec["method"] == "pdlib":  # one-time set-up, not timed: load (or on first use compile) the scan kernel
        import torch

        import pdlib._scan

        pdlib._scan.available(torch.device("cpu"))
    reference, labels, queries = make_data(spec["case"], spec["scale"])
    gc.collect()
    # With the reset, the peak restarts from the current RSS; without it, a loading peak would hide
    # the method's own (the current RSS is then the best baseline there is).
    baseline = peak_rss_bytes() if reset_peak_rss() else current_rss_bytes()
    kwargs = {"block_bytes": spec["block_bytes"]} if spec.get("block_bytes") else {}
    load = os.getloadavg()[0]
    if spec.get("profile"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        predictions = RUNNERS[spec["method"]](reference, labels, queries, **kwargs)
        profiler.disable()
        seconds = time.perf_counter() - start
        print(f"\ncProfile of pdlib on {case_label(spec['case'], spec['scale'])}: {seconds:.2f} s")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(14)
    else:
        start = time.perf_counter()
        predictions = RUNNERS[spec["method"]](reference, labels, queries, **kwargs)
        seconds = time.perf_counter() - start
    np.save(spec["out"] + ".npy", np.asarray(predictions, dtype=np.int64))
    Path(spec["out"] + ".json").write_text(json.dumps(
        {"seconds": seconds, "extra_bytes": peak_rss_bytes() - baseline, "load": load}))


def measure(method: str, case: str, scale: float, folder: str, block_bytes: int | None = None,
            profile: bool = False, threads: int | None = None) -> dict:
    out = os.path.join(folder, f"{case}-{method}-{block_bytes or 'default'}")
    spec = {"method": method, "case": case, "scale": scale, "out": out, "block_bytes": block_bytes,
            "profile": profile, "threads": threads}
    subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], check=True)
    return {**json.loads(Path(out + ".json").read_text()), "predictions": np.load(out + ".npy")}


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of every N to run (default 1.0)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--sweep-case", default="d256", help="case for the block_bytes sweep, or 'none'")
    parser.add_argument("--sweep-mib", default="16,64,256,1024", help="block_bytes values for the sweep, in MiB")
    parser.add_argument("--profile", metavar="CASE", help="also print a cProfile of pdlib on this case")
    parser.add_argument("--threads", type=int, help="threads for torch, OpenMP and BLAS (default: the libraries' own)")
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases + [args.sweep_case, args.profile] if c and c != "none" and c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")

    import pdlib.knn

    limit_threads(args.threads)
    print(machine_summary())
    rates = [matmul_gflops()]
    print(f"fp32 matmul rate (4096^3 torch matmul, best of 3): {rates[0]:.1f} GFLOP/s", flush=True)
    folder = tempfile.mkdtemp(prefix="knn-bench-")
    rows = []
    for case in cases:
        results = {method: measure(method, case, args.scale, folder, threads=args.threads) for method in METHODS}
        truth = results["sklearn"]["predictions"]
        reference, _, queries = make_data(case, args.scale)
        for method, result in results.items():
            differ = np.flatnonzero(result["predictions"] != truth)
            gaps = boundary_gaps(reference, queries, differ, K)
            rows.append({
                "case": case, "label": case_label(case, args.scale), "method": method,
                "seconds": result["seconds"], "gflops": gemm_flops(case, args.scale) / result["seconds"] / 1e9,
                "extra_mb": result["extra_bytes"] / 2**20, "load": result["load"],
                "agreement": 1.0 - differ.size / truth.size, "disagreements": int(differ.size),
                "unexplained": int((gaps > TIE_TOLERANCE).sum()),
                "max_gap_of_disagreement": float(gaps.max()) if gaps.size else None,
            })
            print(f"{rows[-1]['label']:<50} {method:<8} {result['seconds']:8.2f} s {rows[-1]['gflops']:6.1f} GFLOP/s "
                  f"{rows[-1]['extra_mb']:7.0f} MB  {differ.size} disagreements ({rows[-1]['unexplained']} not near-ties)"
                  f"  [load {result['load']:.2f}]", flush=True)
        del reference, queries

    sweep = []
    if args.sweep_case != "none":
        flops = gemm_flops(args.sweep_case, args.scale)
        n_reference, n_queries, _, _ = case_shape(args.sweep_case, args.scale)
        for mib in (int(m) for m in args.sweep_mib.split(",")):
            result = measure("pdlib", args.sweep_case, args.scale, folder, block_bytes=mib * 2**20,
                             threads=args.threads)
            try:  # the score tile pdlib uses (private constants; informative only)
                if n_queries is None:
                    width = pdlib.knn._symmetric_width(n_reference, mib * 2**20, 4)
                    shape = f"{width} x {width} (pairs once)"
                else:
                    block_rows = min(n_queries, pdlib.knn.MAX_ROWS, mib * 2**20 // (2 * pdlib.knn.TILE * 4))
                    shape = f"{block_rows} x {pdlib.knn.TILE}"
            except (AttributeError, TypeError, ValueError):
                shape = "?"
            sweep.append({"block_mib": mib, "block_shape": shape, "seconds": result["seconds"],
                          "gflops": flops / result["seconds"] / 1e9, "extra_mb": result["extra_bytes"] / 2**20,
                          "load": result["load"],
                          "default": mib * 2**20 == pdlib.knn.DEFAULT_BLOCK_BYTES})
            print(f"block_bytes sweep on {args.sweep_case}: {mib:5d} MiB ({shape}) {result['seconds']:7.2f} s "
                  f"{sweep[-1]['gflops']:6.1f} GFLOP/s {sweep[-1]['extra_mb']:6.0f} MB  [load {result['load']:.2f}]",
                  flush=True)

    if args.profile:
        measure("pdlib", args.profile, args.scale, folder, profile=True, threads=args.threads)

    rates.append(matmul_gflops())
    rate = max(rates)
    print(f"\nfp32 matmul rate: {rates[0]:.1f} GFLOP/s before, {rates[1]:.1f} after; using {rate:.1f}. "
          f"Load average now {load_average()}.\n")
    for row in rows + sweep:
        row["fraction_of_matmul"] = row["gflops"] / rate

    print(markdown_table(
        ["case", "method", "time (s)", "GFLOP/s", "of matmul", "extra memory (MB)", "agreement with sklearn",
         "disagreements (not near-ties)"],
        [[row["label"], row["method"], f"{row['seconds']:.2f}", f"{row['gflops']:.1f}",
          f"{row['fraction_of_matmul']:.0%}", f"{row['extra_mb']:.0f}", f"{row['agreement']:.5f}",
          f"{row['disagreements']} ({row['unexplained']})"] for row in rows],
        align="llrrrrrr"))
    if sweep:
        print(f"\npdlib block_bytes on {case_label(args.sweep_case, args.scale)}:\n")
        print(markdown_table(
            ["block_bytes (MiB)", "block (query rows x reference columns)", "time (s)", "GFLOP/s", "of matmul",
             "extra memory (MB)"],
            [[f"{s['block_mib']}{' (default)' if s['default'] else ''}", s["block_shape"], f"{s['seconds']:.2f}",
              f"{s['gflops']:.1f}", f"{s['fraction_of_matmul']:.0%}", f"{s['extra_mb']:.0f}"] for s in sweep]))
        best = min(sweep, key=lambda s: s["seconds"])
        print(f"\nfastest block_bytes: {best['block_mib']} MiB ({best['seconds']:.2f} s)")

    print()
    by = {(row["case"], row["method"]): row for row in rows}
    verdicts = []
    for case in cases:
        ours, faiss, sk = (by[(case, m)] for m in METHODS)
        checks = [
            (ours["fraction_of_matmul"] >= TARGET_FRACTION,
             f"pdlib at {ours['fraction_of_matmul']:.0%} of the matmul rate (target >= {TARGET_FRACTION:.0%})"),
            (ours["seconds"] <= faiss["seconds"],
             f"pdlib {faiss['seconds'] / ours['seconds']:.2f}x the speed of FAISS (target >= 1)"),
            (sk["seconds"] >= TARGET_VS_SKLEARN * ours["seconds"],
             f"pdlib {sk['seconds'] / ours['seconds']:.2f}x the speed of sklearn brute (target >= {TARGET_VS_SKLEARN})"),
            (ours["unexplained"] == 0,
             f"labels identical to sklearn's except at near-ties ({ours['disagreements']} differ, "
             f"{ours['unexplained']} not near-ties)"),
            (ours["extra_mb"] <= TARGET_MEMORY_MB, f"pdlib extra memory {ours['extra_mb']:.0f} MB (target <= 1 GB)"),
        ]
        for ok, text in checks:
            verdicts.append(verdict(ok, f"{case}: {text}"))
            print(verdicts[-1])
    if args.json:
        for row in rows:
            row.pop("predictions", None)
        Path(args.json).write_text(json.dumps(
            {"machine": machine_summary(), "threads": args.threads, "matmul_gflops": rates, "scale": args.scale, "k": K,
             "tie_tolerance": TIE_TOLERANCE, "rows": rows, "block_bytes_sweep": sweep, "verdicts": verdicts},
            indent=2))
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
