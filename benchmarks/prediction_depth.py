"""Prediction depth end to end on one trained network: pdlib against the peers' approach.

What is measured: wall time of everything after training — embedding capture plus every
k-NN probe (k = 30) — for the training points (leave-one-out) and for validation points,
and whether the resulting prediction depths are identical.

- pdlib: ``pdlib.probe_model`` (one forward pass per batch for all probes; blocked GEMM
  k-NN).
- Baseline, measured in the same run: what the public implementations do — one full
  forward pass per probed layer (a hook on that layer only), then
  ``sklearn.neighbors.KNeighborsClassifier(30)`` with its default algorithm, fitted on the
  training embeddings; training points leave-one-out via ``kneighbors()`` and a majority
  vote with ties to the smallest class, validation points via ``predict``. PD from the
  same ``pdlib.prediction_depth``, so only speed can differ.

Target: pdlib >= 5x faster, identical PD (differences only at distance near-ties).

Usage: python benchmarks/prediction_depth.py [--arch mlp --width 256 --n-train 10000 --n-val 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import pdlib
from pdlib.models import INPUT, SOFTMAX


def baseline_embedding(model, inputs, name, batch_size=500) -> np.ndarray:
    """One full forward pass that keeps a single probe's activations."""
    kept = []
    module = dict(model.named_modules()).get(name)
    handle = None if module is None else module.register_forward_hook(
        lambda _m, _i, out: kept.append(out.detach().flatten(1).numpy().copy()))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            out = model(batch)
            if name == INPUT:
                kept.append(batch.flatten(1).numpy().copy())
            elif name == SOFTMAX:
                kept.append(torch.softmax(out, 1).numpy())
    if handle is not None:
        handle.remove()
    return np.concatenate(kept)


def baseline_depths(model, train_x, train_y, val_x, n_classes):
    from sklearn.neighbors import KNeighborsClassifier

    seconds = {"capture": 0.0, "knn": 0.0}
    train_probe, val_probe = [], []
    for name in model.probe_points:
        start = time.perf_counter()
        train_emb, val_emb = baseline_embedding(model, train_x, name), baseline_embedding(model, val_x, name)
        seconds["capture"] += time.perf_counter() - start
        start = time.perf_counter()
        clf = KNeighborsClassifier(30).fit(train_emb, train_y)
        neighbours = clf.kneighbors(return_distance=False)  # leave-one-out
        counts = np.apply_along_axis(np.bincount, 1, train_y[neighbours], minlength=n_classes)
        train_probe.append(counts.argmax(axis=1))
        val_probe.append(clf.predict(val_emb))
        seconds["knn"] += time.perf_counter() - start
    train_net = pdlib.predict(model, train_x)
    val_net = pdlib.predict(model, val_x)
    return (pdlib.prediction_depth(np.stack(train_probe), train_net),
            pdlib.prediction_depth(np.stack(val_probe), val_net), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    train, test = pdlib.load_dataset("fashion_mnist", "train"), pdlib.load_dataset("fashion_mnist", "test")
    train_x, train_y = train.inputs[:args.n_train], train.labels[:args.n_train].numpy()
    val_x = test.inputs[:args.n_val]
    model = pdlib.make_model(args.arch, 10, 1, 28, width=args.width, seed=0)
    fit = pdlib.train_model(model, train_x, train_y, pdlib.TrainConfig(epochs=args.epochs, batch_size=128, lr=0.1),
                            seed=0, device="cpu", progress=False)
    print(f"{args.arch} width {args.width}: trained on {args.n_train} Fashion-MNIST images in {fit.seconds:.0f} s, "
          f"training accuracy {fit.train_accuracy:.4f}; {len(model.probe_points)} probes; "
          f"{torch.get_num_threads()} threads; validation {args.n_val} images")

    start = time.perf_counter()
    result = pdlib.probe_model(model, train_x, train_y, val_x, k=30, device="cpu", progress=False)
    ours = time.perf_counter() - start
    start = time.perf_counter()
    base_train, base_val, base_seconds = baseline_depths(model, train_x, train_y, val_x, 10)
    theirs = time.perf_counter() - start

    differ_train = int((base_train != result.train_depth).sum())
    differ_val = int((base_val != result.query_depth).sum())
    print("\n| method | capture (s) | k-NN probes (s) | total (s) | speed-up |")
    print("|---|---:|---:|---:|---:|")
    print(f"| pdlib.probe_model | {result.seconds['capture']:.1f} | {result.seconds['knn']:.1f} | {ours:.1f} | "
          f"{theirs / ours:.1f}x |")
    print(f"| one pass per layer + KNeighborsClassifier(30) | {base_seconds['capture']:.1f} | "
          f"{base_seconds['knn']:.1f} | {theirs:.1f} | 1.0x |")
    print(f"\nPD differs for {differ_train} of {args.n_train} training points and {differ_val} of {args.n_val} "
          f"validation points; mean PD train {result.train_depth.mean():.3f}, validation {result.query_depth.mean():.3f}")
    print(f"{'PASS' if theirs >= 5 * ours else 'FAIL'}  speed-up {theirs / ours:.1f}x (target >= 5x)")
    print(f"{'PASS' if differ_train + differ_val == 0 else 'CHECK'}  identical PD "
          "(differences can only come from float near-ties between the 30th and 31st neighbour)")


if __name__ == "__main__":
    main()
