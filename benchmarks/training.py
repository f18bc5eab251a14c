"""Training throughput: images per second of ``pdlib.train_model`` against a plain eager SGD loop.

For each network the laptop profile trains (its architecture, width, training-set size, batch,
learning rate and checkpoint density), the same initialisation is trained twice in one run:

- **plain**: the loop every PyTorch tutorial writes, in this file: a fresh ``randperm`` per epoch,
  ``model(x[batch])``, the loss, ``backward``, ``SGD(momentum=0.9, nesterov=True,
  weight_decay)``. No schedule, no checkpoints, no margins, eager mode;
- **pdlib**: ``pdlib.train_model`` with the profile's ``TrainConfig`` (warm-up schedule, weight
  decay off BN and biases, AUM margins, the final training-accuracy pass) and, where the profile
  records them, its prediction checkpoints over the held-out images.

The ratio ``plain seconds / pdlib seconds`` (>= 1: pdlib is at least as fast) is what the
throughput issue judges: >= 1.0 for the VGG16 ensemble with its checkpoints, >= 0.9 elsewhere.
Each case trains for the profile's epochs (``--epochs`` overrides; the checkpoints keep the
profile's density per epoch; the 0-Hinge case runs ``--hinge-steps`` full-batch steps) after one
untimed warm-up epoch of each loop, which also pays ``torch.compile``'s one-off cost. That cost
(once per process and network shape, shared by every network of an ensemble; a few seconds when
inductor's on-disk cache already holds the kernels) is printed as the first call's time.

Usage: python benchmarks/training.py [--epochs 10] [--cases vgg16_ensemble,mlp_seeds] [--json
out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    fashion_mnist,
    limit_threads,
    machine_summary,
    markdown_table,
    matmul_gflops,
    verdict,
)  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One network of the laptop profile: what it trains on and what it records."""

    figure: str  # the laptop plan's figure(s) it serves
    arch: str  # "mlp", "vgg16" or "resnet18"
    n_train: int  # images in its training split
    n_tracked: int  # held-out images predicted at each checkpoint (pool validation + test images)
    n_tracked_before: int  # images pdlib predicted at each checkpoint before #22 (pool + test)
    checkpoints_per_epoch: float  # the profile's n_checkpoints / epochs (0: none recorded)
    target: float  # the minimum ratio plain / pdlib
    loss: str = "cross_entropy"
    full_batch: bool = False  # full-batch gradient descent (0-Hinge), epochs = steps
    ensemble: bool = False  # a 90:10 ensemble's network (the profile compiles those)


def _cases(profile) -> dict[str, Case]:
    checkpoints = profile.n_checkpoints
    per_epoch = {arch: checkpoints / profile.train_config(arch).epochs for arch in ("mlp", "vgg16")}
    pool, n_test = 2000, profile.n_test
    return {
        # §3.1 and §4: 40 VGG16 on 90:10 splits of 2,000 images; checkpoints over the 200 held out.
        "vgg16_ensemble": Case(
            "fig3, fig4, fig5, fig7_8",
            "vgg16",
            pool * 9 // 10,
            pool // 10,
            pool + n_test,
            per_epoch["vgg16"],
            1.0,
            ensemble=True,
        ),
        # Fig. 4 middle and Fig. 6 margins: VGG16 on the whole 2,000-image pool, no checkpoints.
        "vgg16_seeds": Case("fig4_middle, fig6_margins", "vgg16", pool, 0, 0, 0.0, 0.9),
        # §2: ResNet18 on the profile's pool.
        "resnet18_seeds": Case("fig1, fig2", "resnet18", profile.n_pool, 0, 0, 0.0, 0.9),
        # §2: MLP 7 x 256 on the profile's pool.
        "mlp_seeds": Case("fig2", "mlp", profile.n_pool, 0, 0, 0.0, 0.9),
        # Label errors: 20 MLPs on 90:10 splits of 2,000 images, with checkpoints.
        "mlp_ensemble": Case(
            "label_errors",
            "mlp",
            pool * 9 // 10,
            pool // 10,
            pool + n_test,
            per_epoch["mlp"],
            0.9,
            ensemble=True,
        ),
        # Fig. 5 middle/right: MLPs on the whole pool with noisy labels, 40 checkpoints over twice
        # the epochs, tracking the test images.
        "mlp_noise": Case(
            "fig5_noise",
            "mlp",
            profile.n_pool,
            n_test,
            profile.n_pool + n_test,
            40 / (2 * profile.mlp_train.epochs),
            0.9,
        ),
        # Fig. 6 right: full-batch gradient descent on 0-Hinge, 1,000 images (epochs are steps).
        "mlp_hinge": Case(
            "fig6_hinge", "mlp", 1000, 0, 0, 0.0, 0.9, loss="zero_hinge", full_batch=True
        ),
    }


def plain_loop(
    model, inputs, labels, *, epochs, batch_size, lr, momentum, weight_decay, seed, loss
) -> None:
    """The reference: eager SGD with Nesterov momentum, nothing recorded."""
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=momentum,
        nesterov=momentum > 0,
        weight_decay=weight_decay,
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(inputs), generator=generator).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()


def run_case(
    name: str,
    case: Case,
    profile,
    images,
    labels,
    *,
    epochs: int,
    compile_mode: str,
    track_all: bool,
) -> dict:
    from pdlib import train_model, zero_hinge_loss
    from pdlib.models import make_model

    base = profile.train_config(case.arch, ensemble=case.ensemble)
    if case.full_batch:
        base = dataclasses.replace(
            base,
            batch_size=case.n_train,
            lr=profile.hinge_lr,
            weight_decay=0.0,
            warmup_fraction=0.0,
            schedule="constant",
            loss=case.loss,
        )
    if compile_mode != "profile":
        base = dataclasses.replace(base, compile=compile_mode == "on")
    compiled = bool(getattr(base, "compile", False))  # pdlib before #22 had no such field
    width = profile.width(case.arch)
    x, y = images[: case.n_train].contiguous(), labels[: case.n_train]
    n_tracked = case.n_tracked_before if track_all else case.n_tracked
    tracked = images[-n_tracked:] if n_tracked and case.checkpoints_per_epoch else None
    loss = F.cross_entropy if case.loss == "cross_entropy" else zero_hinge_loss

    def network():
        return make_model(case.arch, 10, 1, 28, width=width, seed=0)

    def pdlib_run(n_epochs):
        config = dataclasses.replace(
            base, epochs=n_epochs, n_checkpoints=round(case.checkpoints_per_epoch * n_epochs)
        )
        start = time.perf_counter()
        train_model(
            network(), x, y, config, seed=0, device="cpu", track_inputs=tracked, progress=False
        )
        return time.perf_counter() - start

    def plain_run(n_epochs):
        start = time.perf_counter()
        plain_loop(
            network(),
            x,
            y,
            epochs=n_epochs,
            batch_size=base.batch_size,
            lr=base.lr,
            momentum=base.momentum,
            weight_decay=base.weight_decay,
            seed=0,
            loss=loss,
        )
        return time.perf_counter() - start

    first_pdlib = pdlib_run(1)  # warm-up; with compile on, the first call of a shape compiles
    plain_run(1)
    plain, ours = plain_run(epochs), pdlib_run(epochs)
    images_seen = epochs * case.n_train
    return {
        "case": name,
        "figure": case.figure,
        "arch": f"{case.arch} w{width}",
        "n_train": case.n_train,
        "checkpoints": round(case.checkpoints_per_epoch * epochs),
        "n_tracked": n_tracked,
        "compile": compiled,
        "plain_s": plain,
        "pdlib_s": ours,
        "plain_img_s": images_seen / plain,
        "pdlib_img_s": images_seen / ours,
        "ratio": plain / ours,
        "first_call_s": first_pdlib,
        "target": case.target,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="laptop")
    parser.add_argument(
        "--epochs", type=int, default=0, help="timed epochs per loop (0: the profile's)"
    )
    parser.add_argument(
        "--hinge-steps", type=int, default=300, help="timed full-batch steps of the 0-Hinge case"
    )
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument(
        "--compile",
        default="profile",
        choices=("profile", "on", "off"),
        help="torch.compile as the profile's TrainConfig says, or forced on / off",
    )
    parser.add_argument(
        "--track-all",
        action="store_true",
        help="predict every pool and test image at each checkpoint, as pdlib did before #22",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    limit_threads(args.threads)
    from pdlib.profiles import get_profile

    profile = get_profile(args.profile)
    cases = _cases(profile)
    names = [c for c in args.cases.split(",") if c] or list(cases)
    unknown = sorted(set(names) - set(cases))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(cases)}")
    gflops = matmul_gflops()
    print(
        f"# training throughput, {args.profile} profile\n\n{machine_summary()}\n"
        f"fp32 matmul: {gflops:.0f} GFLOP/s (4096^3, best of 3)\n"
    )
    images, labels = fashion_mnist("train")
    labels = torch.as_tensor(labels)
    results = []
    for name in names:
        case = cases[name]
        epochs = (
            args.hinge_steps
            if case.full_batch
            else args.epochs or profile.train_config(case.arch).epochs
        )
        if name == "mlp_noise" and not args.epochs:
            epochs *= 2  # the noise networks train twice the profile's epochs
        results.append(
            run_case(
                name,
                case,
                profile,
                images,
                labels,
                epochs=epochs,
                compile_mode=args.compile,
                track_all=args.track_all,
            )
        )
        r = results[-1]
        print(
            f"{name}: plain {r['plain_img_s']:,.0f} img/s, pdlib {r['pdlib_img_s']:,.0f} img/s, "
            f"ratio {r['ratio']:.2f}",
            flush=True,
        )
    rows = [
        (
            r["case"],
            r["arch"],
            f"{r['n_train']:,}",
            f"{r['checkpoints']} x {r['n_tracked']:,}",
            "yes" if r["compile"] else "no",
            f"{r['plain_img_s']:,.0f}",
            f"{r['pdlib_img_s']:,.0f}",
            f"**{r['ratio']:.2f}x**",
            f"{r['first_call_s']:.1f} s",
        )
        for r in results
    ]
    print()
    print(
        markdown_table(
            [
                "case",
                "network",
                "train images",
                "checkpoints x held-out images",
                "compile",
                "plain img/s",
                "pdlib img/s",
                "plain s / pdlib s",
                "first call (1 epoch)",
            ],
            rows,
        )
    )
    print(f"\nfp32 matmul {gflops:.0f} GFLOP/s; {machine_summary()}")
    for r in results:
        print(
            verdict(
                r["ratio"] >= r["target"],
                f"{r['case']}: {r['ratio']:.2f}x >= {r['target']}x the plain loop",
            )
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"gflops": gflops, "machine": machine_summary(), "results": results}, indent=2
            )
        )


if __name__ == "__main__":
    main()
