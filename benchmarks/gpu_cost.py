"""What one paper-profile network costs on a GPU: training, capture, k-NN and peak memory.

For a width-64 ResNet18 and VGG16 on CIFAR-shaped tensors (3 x 32 x 32, 10 classes), measures

- training throughput (images/s) of SGD steps at batch 128 (forward, backward, update);
- capture of every probe's embedding and the exact k-NN probes for 45,000 training points
  (leave-one-out) and 15,000 held-out points, as ``pdlib.probe_model`` does it;
- peak GPU memory (``torch.cuda.max_memory_allocated``) of each stage,

then extrapolates the paper profile's plan (every network of every figure, ``pdlib.profiles``)
to GPU-hours. Random tensors stand in for CIFAR: the cost does not depend on the pixels.

    python benchmarks/gpu_cost.py                 # on a GPU: the measurement for the Reproduce page
    python benchmarks/gpu_cost.py --scale 0.02 --device cpu --width 4    # a quick check on a CPU

Prints a markdown table and, with ``--json PATH``, saves the numbers.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pdlib import TrainConfig, make_model, probe_model, train_model
from pdlib.profiles import PROFILES


def _peak(device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    arch: str, width: int, n_train: int, n_query: int, device: torch.device, steps: int
) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_query, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (n_train + n_query,), generator=generator)
    model = make_model(arch, 10, 3, 32, width=width, seed=0).to(device)
    batch = 128
    config = TrainConfig(epochs=1, batch_size=batch, lr=0.05)
    n_images = min(len(x), steps * batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train_model(
        model, x[: batch * 4], y[: batch * 4], config, seed=0, device=device, progress=False
    )  # warm-up
    _sync(device)
    start = time.perf_counter()
    train_model(model, x[:n_images], y[:n_images], config, seed=0, device=device, progress=False)
    _sync(device)
    train_rate, train_peak = n_images / (time.perf_counter() - start), _peak(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = probe_model(
        model, x[:n_train], y[:n_train], x[n_train:], device=device, progress=False
    )
    _sync(device)
    return {
        "arch": arch,
        "width": width,
        "train images/s": train_rate,
        "train peak GiB": train_peak,
        "capture s": result.seconds["capture"],
        "k-NN s": result.seconds["knn"],
        "probe s": time.perf_counter() - start,
        "probe peak GiB": _peak(device),
        "n_train": n_train,
        "n_query": n_query,
    }


def paper_gpu_hours(rows: dict) -> dict:
    """Every network of the paper profile's plan, at the measured rates (seconds per network)."""
    paper = PROFILES["paper"]
    per_arch = {}
    for arch, row in rows.items():
        epochs = paper.train_config(arch).epochs
        per_arch[arch] = 45000 * epochs / row["train images/s"] + row["probe s"]
    networks = {}
    for figure, setup in paper.plan:
        for arch in setup.archs:
            for dataset in setup.datasets:
                networks[(figure, arch, dataset)] = setup.n_models
    # Figures that share a set-up share networks: count each (kind, dataset, arch) once, at its
    # largest size.
    shared = {}
    for (figure, arch, dataset), n in networks.items():
        kind = paper.setup(figure).kind
        shared[(kind, arch, dataset)] = max(shared.get((kind, arch, dataset), 0), n)
    seconds = sum(
        n * per_arch.get(arch, per_arch["resnet18"]) for (kind, arch, dataset), n in shared.items()
    )
    return {
        "networks": sum(shared.values()),
        "gpu_hours": seconds / 3600,
        "seconds_per_network": per_arch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies 45,000 + 15,000 points"
    )
    parser.add_argument("--steps", type=int, default=200, help="training steps timed")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    n_train, n_query = max(64, int(45000 * args.scale)), max(32, int(15000 * args.scale))
    rows = {
        arch: measure(arch, args.width, n_train, n_query, device, args.steps)
        for arch in ("resnet18", "vgg16")
    }
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"device: {name}; {n_train} training + {n_query} held-out points; width {args.width}\n")
    columns = ["arch", "train images/s", "train peak GiB", "capture s", "k-NN s", "probe peak GiB"]
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows.values():
        print(
            "| "
            + " | ".join(
                f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns
            )
            + " |"
        )
    total = paper_gpu_hours(rows) if args.scale == 1.0 else None
    if total:
        print(
            f"\nthe paper profile's plan: {total['networks']} networks, about "
            f"{total['gpu_hours']:.0f} GPU-hours"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": name, "rows": rows, "paper": total}, handle, indent=2)


if __name__ == "__main__":
    main()
