"""Command line: ``python -m pdlib audit DATA --out DIR`` and ``python -m pdlib download [NAMES]``.

Exit status: 0 on success, 2 for bad input or arguments (the message says which), 1 when a
dataset cannot be found or downloaded.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "make_parser"]

DOWNLOADABLE = (
    "fashion_mnist",
    "svhn",
    "cifar10",
    "cifar100",
)  # pdlib.data.SPLIT_SIZES, without importing torch


def make_parser() -> argparse.ArgumentParser:
    """The ``python -m pdlib`` argument parser (``audit`` and ``download`` sub-commands)."""
    # The module, not pdlib's lazy function of the same name; its docstring is the audit's --help
    # text.
    audit_module = importlib.import_module("pdlib.audit")

    defaults, arch_defaults = audit_module.DEFAULTS, audit_module.ARCH_DEFAULTS
    parser = argparse.ArgumentParser(
        prog="python -m pdlib",
        description="pdlib: prediction depth and example difficulty (Baldock et al., NeurIPS "
        "2021).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{audit,download}")
    audit = commands.add_parser(
        "audit",
        help="find likely mislabeled and ambiguous images in a labelled set",
        description=audit_module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument(
        "data",
        metavar="DATA",
        help="image folder (one subfolder per class), CSV with path,label columns, .npz with "
        "images and labels, or a dataset name (e.g. fashion_mnist)",
    )
    audit.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (created; resumable)"
    )
    audit.add_argument(
        "--arch",
        choices=tuple(arch_defaults),
        help="network (default: resnet18 on a GPU, mlp on a CPU, where 16 ResNet18s on 5,000 "
        "images take over an hour on 2 cores)",
    )
    audit.add_argument(
        "--models",
        type=int,
        dest="n_models",
        metavar="R",
        help=f"networks in the 90:10 ensemble (default {defaults['n_models']})",
    )
    audit.add_argument(
        "--width",
        type=int,
        help="hidden units (mlp) or first-stage channels "
        "(conv nets); default " + ", ".join(f"{a} {d['width']}" for a, d in arch_defaults.items()),
    )
    audit.add_argument(
        "--epochs", type=int, help=f"training epochs per network (default {defaults['epochs']})"
    )
    audit.add_argument(
        "--batch-size", type=int, help=f"images per SGD step (default {defaults['batch_size']})"
    )
    audit.add_argument(
        "--lr",
        type=float,
        help="peak learning rate; default "
        + ", ".join(f"{a} {d['lr']}" for a, d in arch_defaults.items()),
    )
    audit.add_argument(
        "--seed",
        type=int,
        help=f"seed of network 0, the folds and any subset (default {defaults['seed']})",
    )
    audit.add_argument(
        "--image-size",
        type=int,
        metavar="PIXELS",
        help="side of the square images the networks see (default: the most common size if all "
        "images are square, else 32)",
    )
    audit.add_argument(
        "--mode",
        choices=audit_module.MODES,
        help="colour mode (default auto: grayscale if every image is grayscale, else rgb)",
    )
    audit.add_argument(
        "--classes",
        metavar="A,B,...",
        help="the classes, comma-separated, in label order; labels outside them are an error",
    )
    audit.add_argument(
        "--n-images", type=int, metavar="N", help="audit a stratified subset of N images"
    )
    audit.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    audit.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="train the networks one after another here (local) or on a Ray cluster",
    )
    audit.add_argument(
        "--resume",
        action="store_true",
        help="continue the audit in DIR; options left out are taken from its config.json",
    )
    audit.add_argument("--quiet", action="store_true", help="no progress bars (like PDLIB_QUIET=1)")
    download = commands.add_parser(
        "download",
        help="download and verify datasets into the data folder",
        description="Download, verify and install datasets into the data folder ($PDLIB_DATA or "
        "<repository>/data). With no names: every dataset the paper profile needs.",
    )
    download.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(DOWNLOADABLE)}"
    )
    return parser


def main(argv=None) -> int:
    """Run one command; returns the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command == "download":
        unknown = [name for name in args.names if name not in DOWNLOADABLE]
        if unknown:
            parser.error(
                f"cannot download {', '.join(unknown)}; choose from {', '.join(DOWNLOADABLE)}"
            )
        return _download(args.names or DOWNLOADABLE)
    return _audit(args)


def _download(names) -> int:
    from pdlib.data import DatasetNotFoundError, download_datasets

    try:
        download_datasets(tuple(names))
    except DatasetNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _audit(args) -> int:
    if args.quiet:
        os.environ["PDLIB_QUIET"] = (
            "1"  # before importing pdlib, for every progress bar of this process
        )
    from pdlib.audit import AuditInputError, audit
    from pdlib.data import DatasetNotFoundError

    classes = (
        None if args.classes is None else [c.strip() for c in args.classes.split(",") if c.strip()]
    )
    try:
        table = audit(
            args.data,
            out=args.out,
            arch=args.arch,
            n_models=args.n_models,
            width=args.width,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            image_size=args.image_size,
            mode=args.mode,
            classes=classes,
            n_images=args.n_images,
            device=args.device,
            executor=args.executor,
            resume=args.resume,
        )
    except AuditInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DatasetNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    disagree = int(
        ((table["given label"] != table["consensus class"]) & (table["held out"] > 0)).sum()
    )
    if not args.quiet:
        print(
            f"{len(table):,} images scored; {disagree:,} have a consensus class other than their "
            f"label. Wrote {os.path.join(args.out, 'scores.csv')}, scores.parquet, report.html and "
            "config.json."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
