"""Prediction depth end to end on one trained network: pdlib against what the public implementations
do.

What is measured: wall time of everything after training — embedding capture plus every k-NN
probe (k = 30) — for the training points (leave-one-out: a point is not its own neighbour) and
for validation points, then whether the prediction depths (PD) are identical.

- pdlib: ``pdlib.probe_model`` (all probes captured in one forward pass per batch; exact
  blocked-GEMM k-NN in float32).
- Baseline, in the same run on the same trained network: one full forward pass over all inputs
  per probed layer (a forward hook on that layer only, so n_probes passes over train and over
  validation), then ``sklearn.neighbors.KNeighborsClassifier(30)`` with its DEFAULT algorithm
  ("auto": brute force for most probes, a k-d tree for low-dimensional ones such as the
  softmax), fitted on the training embeddings; training points leave-one-out via
  ``kneighbors()`` (no X: each point's own entry is skipped) and a majority vote with ties to
  the smallest class (``np.argmax`` of ``np.bincount``); validation points via ``predict``. PD
  from the same ``pdlib.prediction_depth``, so only the speed can differ.

Differences in PD are explained point by point: for each probe at which the two k-NN
predictions of a differing point disagree, the k-th and (k+1)-th squared distances are
recomputed in float64; a relative gap below 1e-5 is a float near-tie (see
``_common.boundary_gaps``).

Model: by default an MLP with 7 hidden layers of 256 units, trained on the first 10,000
Fashion-MNIST training images (SGD, 30 epochs, lr 0.1, batch 128; must reach >= 97 % training
accuracy for PD to be meaningful); validation = the next 2,000 training images (held out, as in
the paper's 90:10 splits). ``--arch resnet18 --width 8 --n-train 2000`` runs a small ResNet18.
``--state PATH`` reuses a trained state_dict (saved there on the first run).

Targets (printed as PASS/FAIL): pdlib >= 5x faster than the baseline in total; identical PD
(differences only at near-ties).

Usage:
    python benchmarks/prediction_depth.py                                   # MLP 7x256, 10,000 +
    2,000 python benchmarks/prediction_depth.py --n-train 2000 --n-val 500 --epochs 10   # quick
    check python benchmarks/prediction_depth.py --arch resnet18 --width 8 --n-train 2000 --n-val 500
    \\
        --lr 0.05 --state /tmp/resnet18-w8.pt
    python benchmarks/prediction_depth.py --threads 1    # on a busy machine: one thread per library
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import pdlib
from pdlib.models import INPUT, SOFTMAX

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    TIE_TOLERANCE,
    boundary_gaps,
    fashion_mnist,
    limit_threads,
    load_average,
    machine_summary,
    markdown_table,
    verdict,
    vote,
)

K = 30
N_CLASSES = 10
TARGET_SPEEDUP, TARGET_TRAIN_ACCURACY = 5.0, 0.97


# --------------------------------------------------------------------------- baseline


def one_layer_embedding(model, inputs, name, batch_size=500) -> np.ndarray:
    """One full forward pass over ``inputs`` that keeps a single probe's activations (a hook on that
    layer)."""
    kept = []
    handle = None
    if name not in (INPUT, SOFTMAX):
        module = dict(model.named_modules())[name]
        handle = module.register_forward_hook(
            lambda _m, _i, out: kept.append(out.detach().flatten(1).numpy().copy())
        )
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                batch = inputs[start : start + batch_size]
                out = model(batch)
                if name == INPUT:
                    kept.append(batch.flatten(1).numpy().copy())
                elif name == SOFTMAX:
                    kept.append(torch.softmax(out, 1).numpy())
    finally:
        if handle is not None:
            handle.remove()
    return np.concatenate(kept)


def baseline(model, train_x, train_y, val_x) -> dict:
    """Per-probe predictions, PD and stage times of the one-pass-per-layer + scikit-learn
    approach."""
    from sklearn.neighbors import KNeighborsClassifier

    seconds = {"capture": 0.0, "knn_train": 0.0, "knn_val": 0.0, "other": 0.0}
    train_probe, val_probe, per_probe = [], [], []
    for name in model.probe_points:
        start = time.perf_counter()
        train_emb, val_emb = (
            one_layer_embedding(model, train_x, name),
            one_layer_embedding(model, val_x, name),
        )
        seconds["capture"] += time.perf_counter() - start

        start = time.perf_counter()
        classifier = KNeighborsClassifier(K).fit(train_emb, train_y)
        neighbours = classifier.kneighbors(return_distance=False)  # no X: leave-one-out
        # np.argmax of np.bincount per row, vectorised (a Python loop would only slow the baseline
        # down)
        train_probe.append(vote(train_y[neighbours], N_CLASSES))
        middle = time.perf_counter()
        val_probe.append(classifier.predict(val_emb))
        end = time.perf_counter()
        seconds["knn_train"] += middle - start
        seconds["knn_val"] += end - middle
        per_probe.append(
            {
                "probe": name,
                "dim": train_emb.shape[1],
                "algorithm": classifier._fit_method,
                "knn_seconds": end - start,
            }
        )

    start = time.perf_counter()
    train_net, val_net = pdlib.predict(model, train_x), pdlib.predict(model, val_x)
    train_probe, val_probe = np.stack(train_probe), np.stack(val_probe)
    result = {
        "train_probe": train_probe,
        "val_probe": val_probe,
        "train_net": train_net,
        "val_net": val_net,
        "train_depth": pdlib.prediction_depth(train_probe, train_net),
        "val_depth": pdlib.prediction_depth(val_probe, val_net),
    }
    seconds["other"] += time.perf_counter() - start
    return {**result, "seconds": seconds, "per_probe": per_probe}


# --------------------------------------------------------------------------- checks


def explain_differences(model, names, train_x, val_x, ours, theirs) -> dict:
    """For every point whose PD differs: the probes where the k-NN predictions differ, and whether
    each is a near-tie."""
    out = {"probe_disagreements": {}, "unexplained": 0, "checked": 0, "max_gap": 0.0}
    for split, inputs, loo in (("train", train_x, True), ("val", val_x, False)):
        mine = ours.train_probe_predictions if split == "train" else ours.query_probe_predictions
        other = theirs[f"{split}_probe"]
        for p, name in enumerate(names):
            rows = np.flatnonzero(mine[p] != other[p])
            out["probe_disagreements"][f"{split}/{name}"] = int(rows.size)
            if rows.size == 0:
                continue
            reference = pdlib.capture_embeddings(model, train_x, [name], progress=False).embeddings[
                name
            ]
            queries = (
                None
                if loo
                else pdlib.capture_embeddings(model, inputs, [name], progress=False).embeddings[
                    name
                ]
            )
            gaps = boundary_gaps(reference, queries, rows, K)
            out["checked"] += int(rows.size)
            out["unexplained"] += int((gaps > TIE_TOLERANCE).sum())
            out["max_gap"] = max(out["max_gap"], float(gaps.max()))
    return out


# --------------------------------------------------------------------------- main


def train_or_load(args, train_x, train_y):
    model = pdlib.make_model(args.arch, N_CLASSES, 1, 28, width=args.width, seed=0)
    if args.state and Path(args.state).exists():
        model.load_state_dict(torch.load(args.state, map_location="cpu"))
        accuracy = float((pdlib.predict(model, train_x) == train_y).mean())
        return model, accuracy, f"loaded from {args.state}"
    config = pdlib.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    fit = pdlib.train_model(model, train_x, train_y, config, seed=0, device="cpu", progress=False)
    if args.state:
        torch.save(model.state_dict(), args.state)
    return (
        model,
        fit.train_accuracy,
        (
            f"trained in {fit.seconds:.0f} s ({args.epochs} epochs, lr "
            f"{args.lr}, "
            f"batch {args.batch_size})" + (f", saved to {args.state}" if args.state else "")
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="mlp", choices=pdlib.ARCHITECTURES)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--state",
        metavar="PATH",
        help="reuse this trained state_dict if it exists, else save it here",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for torch, OpenMP and BLAS (default: the libraries' own)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    args = parser.parse_args()

    limit_threads(args.threads)
    print(machine_summary())
    train_inputs, train_labels = fashion_mnist("train")
    if args.n_train + args.n_val > len(train_labels):
        parser.error(f"--n-train + --n-val must be at most {len(train_labels)}")
    train_x, train_y = train_inputs[: args.n_train].contiguous(), train_labels[: args.n_train]
    val_x = train_inputs[args.n_train : args.n_train + args.n_val].contiguous()
    model, accuracy, how = train_or_load(args, train_x, train_y)
    model.eval()
    names = model.probe_points
    print(
        f"{args.arch} width {args.width} on {args.n_train:,} Fashion-MNIST training images, {how}; "
        f"training accuracy {accuracy:.4f}; {len(names)} probes; {args.n_val:,} validation images",
        flush=True,
    )

    # One-time set-up outside the timing: torch's first use of the k-NN's operations.
    start = time.perf_counter()
    pdlib.knn_neighbours(
        np.random.default_rng(0).standard_normal((3000, 8), dtype=np.float32), k=K, device="cpu"
    )
    print(
        f"k-NN warm-up (first use of its torch operations): {time.perf_counter() - start:.2f} s",
        flush=True,
    )
    load_before = load_average()
    start = time.perf_counter()
    ours = pdlib.probe_model(model, train_x, train_y, val_x, k=K, device="cpu", progress=False)
    ours_total = time.perf_counter() - start
    print(f"pdlib.probe_model: {ours_total:.1f} s", flush=True)
    start = time.perf_counter()
    theirs = baseline(model, train_x, train_y, val_x)
    theirs_total = time.perf_counter() - start
    print(
        f"baseline: {theirs_total:.1f} s; load average {load_before} before pdlib, "
        f"{load_average()} now\n",
        flush=True,
    )

    ours_knn, ours_capture = ours.seconds["knn"], ours.seconds["capture"]
    theirs_s = theirs["seconds"]
    theirs_knn = theirs_s["knn_train"] + theirs_s["knn_val"]
    stages = [
        ("embedding capture", ours_capture, theirs_s["capture"]),
        ("k-NN probes, train (leave-one-out) + validation", ours_knn, theirs_knn),
        (
            "other (setup, network predictions, PD)",
            ours_total - ours_capture - ours_knn,
            theirs_s["other"],
        ),
        ("total", ours_total, theirs_total),
    ]
    print(
        markdown_table(
            [
                "stage",
                "pdlib.probe_model (s)",
                "one pass per layer + KNeighborsClassifier(30) (s)",
                "speed-up",
            ],
            [
                [stage, f"{a:.2f}", f"{b:.2f}", f"{b / a:.1f}x" if a > 0 else "-"]
                for stage, a, b in stages
            ],
        )
    )
    print(
        f"\nbaseline k-NN split: train leave-one-out {theirs_s['knn_train']:.2f} s, "
        f"validation predict {theirs_s['knn_val']:.2f} s; per probe:\n"
    )
    print(
        markdown_table(
            ["probe", "dim", "sklearn algorithm (auto)", "baseline k-NN (s)"],
            [
                [p["probe"], p["dim"], p["algorithm"], f"{p['knn_seconds']:.2f}"]
                for p in theirs["per_probe"]
            ],
            align="lrlr",
        )
    )

    same_net = bool(
        (ours.train_network_predictions == theirs["train_net"]).all()
        and (ours.query_network_predictions == theirs["val_net"]).all()
    )
    differ_train = int((ours.train_depth != theirs["train_depth"]).sum())
    differ_val = int((ours.query_depth != theirs["val_depth"]).sum())
    explained = explain_differences(model, names, train_x, val_x, ours, theirs)
    disagreeing = {key: n for key, n in explained["probe_disagreements"].items() if n}
    print(
        f"\nPD differs for {differ_train} of {args.n_train:,} training points and {differ_val} of "
        f"{args.n_val:,} validation points; network predictions identical: {same_net}."
    )
    where = (
        f" ({', '.join(f'{key}: {n}' for key, n in disagreeing.items())})" if disagreeing else ""
    )
    print(
        f"k-NN probe predictions differ at {explained['checked']} (point, probe) pairs{where}; "
        f"{explained['unexplained']} of them are not near-ties (relative float64 gap between the "
        f"k-th and (k+1)-th squared distance > {TIE_TOLERANCE:g}; largest gap among them "
        f"{explained['max_gap']:.2g})."
    )
    print(
        f"mean PD: train {ours.train_depth.mean():.3f} (pdlib) / "
        f"{theirs['train_depth'].mean():.3f} (baseline), "
        f"validation {ours.query_depth.mean():.3f} / {theirs['val_depth'].mean():.3f}\n"
    )

    speedup = theirs_total / ours_total
    verdicts = [
        verdict(
            accuracy >= TARGET_TRAIN_ACCURACY,
            f"training accuracy {accuracy:.4f} (>= {TARGET_TRAIN_ACCURACY} for a meaningful PD)",
        ),
        verdict(
            speedup >= TARGET_SPEEDUP, f"speed-up {speedup:.1f}x (target >= {TARGET_SPEEDUP:g}x)"
        ),
        verdict(
            same_net and explained["unexplained"] == 0,
            f"identical PD except at near-ties ({differ_train + differ_val} points differ, "
            f"{explained['unexplained']} probe disagreements not near-ties)",
        ),
    ]
    print("\n".join(verdicts))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine_summary(),
                    "args": vars(args),
                    "train_accuracy": accuracy,
                    "pdlib_seconds": {**ours.seconds, "total": ours_total},
                    "baseline_seconds": {**theirs_s, "total": theirs_total},
                    "baseline_per_probe": theirs["per_probe"],
                    "speedup": speedup,
                    "pd_differ": {"train": differ_train, "val": differ_val},
                    "explained": explained,
                    "verdicts": verdicts,
                },
                indent=2,
            )
        )
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
