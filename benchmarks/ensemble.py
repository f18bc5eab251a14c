"""Cost of the 90:10 ensembles: seconds per model, and memory of the per-point statistics.

What is measured, for one profile (the ensemble of its Fig. 3 plan):

- seconds per model, split into training, embedding capture and k-NN probing, for
  ensembles of r = 4, 16, 64 models (each in a fresh cache, so every model is computed):
  the per-model cost must stay flat as r grows;
- peak memory of ``pdlib.ensemble_statistics`` over the r artifacts (RSS high-water mark of a
  fresh subprocess, minus its RSS after imports): it stacks (r, n) arrays of predictions and
  depths, about 25 MB each at the paper's 250 models x 50,000 points.

Usage: python benchmarks/ensemble.py [--profile smoke] [--sizes 4,16,64] [--executor local]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def aggregate_worker(profile: str, n_models: int) -> None:
    """Subprocess body: ensemble statistics of the cached ensemble, report peak extra memory."""
    from pdlib import experiments
    from pdlib.ensembles import ensemble_statistics
    from pdlib.profiles import get_profile

    config = get_profile(profile)
    setup = config.setup("fig3")

    # VmHWM after a reset, not ru_maxrss: in a subprocess the latter is floored at the parent's
    # peak.
    from _common import current_rss_bytes, peak_rss_bytes, reset_peak_rss

    reset_peak_rss()
    before = current_rss_bytes()
    start = time.perf_counter()
    ensemble_statistics(
        experiments.ensemble(config, "fig3", setup.datasets[0], setup.archs[0], n_models)
    )
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes() - before
    print(json.dumps({"aggregate_seconds": seconds, "aggregate_extra_mb": peak / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--sizes", default="4,16,64")
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument("--aggregate-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.aggregate_worker:
        aggregate_worker(args.profile, args.aggregate_worker)
        return
    from pdlib import experiments
    from pdlib.profiles import get_profile

    config = get_profile(args.profile)
    setup = config.setup("fig3")
    task, arch = setup.datasets[0], setup.archs[0]
    print(
        f"profile {args.profile}: the ensemble of Fig. 3, {arch} width {config.width(arch)} on "
        f"{setup.n_pool or config.n_pool} {task} images (+ {config.n_test} test), executor "
        f"{args.executor}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}"
    )
    rows = []
    for n_models in (int(size) for size in args.sizes.split(",")):
        os.environ["PDLIB_CACHE"] = tempfile.mkdtemp(prefix=f"ensemble-bench-{n_models}-")
        start = time.perf_counter()
        ensemble = experiments.ensemble(
            config, "fig3", task, arch, n_models, executor=args.executor, progress=True
        )
        wall = time.perf_counter() - start
        metas = [artifact.meta for artifact in ensemble.artifacts()]
        parts = {
            key: float(np.mean([m["seconds"][key] for m in metas]))
            for key in ("train", "capture", "knn")
        }
        aggregate = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--profile",
                    args.profile,
                    "--aggregate-worker",
                    str(n_models),
                ],
                check=True,
                capture_output=True,
                text=True,
                env=os.environ,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        rows.append({"r": n_models, "wall_per_model": wall / n_models, **parts, **aggregate})
        print(rows[-1], flush=True)
    print(
        "\n| r | wall s / model | train s | capture s | k-NN s | aggregate s | aggregate extra MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['r']} | {row['wall_per_model']:.2f} | {row['train']:.2f} | "
            f"{row['capture']:.2f} | {row['knn']:.2f} | {row['aggregate_seconds']:.2f} | "
            f"{row['aggregate_extra_mb']:.0f} |"
        )
    first, last = rows[0], rows[-1]
    ratio = last["wall_per_model"] / first["wall_per_model"]
    print(
        f"\nper-model cost at r={last['r']} is {ratio:.2f}x that at r={first['r']} "
        f"({'flat' if ratio < 1.25 else 'NOT flat'})"
    )


if __name__ == "__main__":
    main()
