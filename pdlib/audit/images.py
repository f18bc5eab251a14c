"""How the audit reads a labelled image set: an image folder, a CSV of paths and labels, an .npz,
or a dataset pdlib knows; the image policy (mode, size, normalisation) is in :mod:`pdlib.audit`'s
docstring. Bad input raises :class:`AuditInputError` before anything is written.
"""

from __future__ import annotations

import math
from collections import Counter, namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from pdlib._progress import progress_bar
from pdlib.data import DATASETS, dataset_info, load_dataset
from pdlib.knn import DEFAULT_K
from pdlib.plotting import display_images
from pdlib.sampling import stratified_subset

__all__ = ["AuditInputError", "Images", "read_images", "K", "FOLDS", "MODES", "IMAGE_SUFFIXES"]

K = DEFAULT_K  # neighbours of every k-NN probe (the paper's)
FOLDS = (
    10  # the 90:10 protocol as 10 fixed folds: every image is held out by n_models / 10 networks
)
MODES = ("auto", "grayscale", "rgb")
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
GREY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


class AuditInputError(ValueError):
    """The audit's input or output folder cannot be used; the message names the file or the rule."""


#: The images in input order: pixels (n, C, S, S) uint8, labels (n,), index (n,) rows in the input,
#: paths or None.
Images = namedtuple("Images", "pixels labels class_names index paths")


def read_images(data, settings: dict) -> Images:
    """Read, label, check and convert every image (the image policy); resolves mode and size in
    ``settings``."""
    sources, raw, known, paths, index = _sources(data)
    names = settings["classes"] or known or sorted(set(raw), key=_natural_order)
    if len(set(names)) != len(names):
        raise AuditInputError(f"a class is named twice: {', '.join(names)}")
    position = {name: i for i, name in enumerate(names)}
    outside = sorted(set(raw) - set(position), key=_natural_order)
    if outside:
        where = "--classes" if settings["classes"] else "the class names"
        raise AuditInputError(
            f"{len(outside)} label(s) are not in {where} ({', '.join(names)}): "
            f"{', '.join(outside[:10])}"
        )
    labels = np.array([position[label] for label in raw], dtype=np.int64)
    if settings["n_images"] is not None:
        if settings["n_images"] > len(labels):
            raise AuditInputError(
                f"n_images={settings['n_images']} but the input holds {len(labels)} images"
            )
        keep = stratified_subset(labels, settings["n_images"], settings["seed"])
        sources = sources[keep] if isinstance(sources, np.ndarray) else [sources[i] for i in keep]
        labels, index, paths = labels[keep], index[keep], paths and [paths[i] for i in keep]
    # Every class needs 2 images; every network's training split k + 1, for leave-one-out k-NN.
    if len(names) < 2:
        raise AuditInputError(
            f"a single class ({', '.join(names)}): an audit needs at least 2 classes"
        )
    counts = np.bincount(labels, minlength=len(names))
    few = [f"{names[c]} ({counts[c]})" for c in np.flatnonzero(counts < 2)]
    if few:
        raise AuditInputError(f"every class needs at least 2 images; too few in: {', '.join(few)}")
    n_train = len(labels) - math.ceil(len(labels) / FOLDS)  # network 0 holds out the largest fold
    if n_train < K + 1:
        raise AuditInputError(
            f"{len(labels)} images are too few: the k-NN probes use k = {K} neighbours, so each "
            f"network's 90 % training split must hold at least k + 1 = {K + 1} images (here "
            f"{n_train}); an audit needs at least 35 images"
        )
    headers = [(image.size, image.mode) for image in (_open(source, False) for source in sources)]
    if settings["mode"] == "auto":
        settings["mode"] = "grayscale" if all(mode in GREY_MODES for _, mode in headers) else "rgb"
    if settings["image_size"] is None:
        sizes = Counter(size for size, _ in headers)
        settings["image_size"] = (
            int(sizes.most_common(1)[0][0][0]) if all(w == h for w, h in sizes) else 32
        )
    pixels = np.stack(
        [
            _convert(_open(source, True), settings["mode"] == "rgb", settings["image_size"])
            for source in progress_bar(sources, desc="reading images", unit="image")
        ]
    )
    return Images(pixels, labels, tuple(names), index, paths)


def _sources(data):
    """(images or files, label strings, class names or None, paths or None, input rows) of
    ``data``."""
    if isinstance(data, str) and data in DATASETS and not Path(data).exists():  # the training split
        info, loaded = dataset_info(data), load_dataset(data, "train")
        # Undo load_dataset's fixed normalisation: the audit normalises with the images' own
        # statistics.
        pixels = display_images(loaded.inputs.numpy(), info.mean, info.std)
        pixels = pixels if pixels.ndim == 4 else pixels[..., None]  # keep the channel axis
        images = np.rint(pixels * 255).astype(np.uint8)
        raw = [info.class_names[c] for c in loaded.labels.tolist()]
        return images, raw, list(info.class_names), None, np.arange(len(raw))
    path = Path(data).expanduser()
    if path.is_dir():
        return _image_folder(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".npz"):
        return (_csv if path.suffix.lower() == ".csv" else _npz)(path)
    raise AuditInputError(
        f"{path}: not an image folder, a .csv or an .npz file"
        if path.exists()
        else f"{data}: no such file or folder, and not a dataset pdlib knows "
        f"({', '.join(DATASETS)})"
    )


def _natural_order(label: str):  # integer labels sort numerically, before other labels
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


def _image_folder(root: Path):
    classes = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise AuditInputError(
            f"{root} has no class subfolders (ImageFolder layout: one subfolder per class)"
        )
    from torchvision.datasets.folder import make_dataset

    def is_image(path: str) -> bool:  # our suffixes, and nothing hidden (.ipynb_checkpoints, ...)
        relative = Path(path).relative_to(root)
        hidden = any(part.startswith(".") for part in relative.parts)
        return relative.name.lower().endswith(IMAGE_SUFFIXES) and not hidden

    # torchvision's ImageFolder scan and order; the class list above leaves hidden folders out.
    samples = make_dataset(
        str(root),
        {name: i for i, name in enumerate(classes)},
        is_valid_file=is_image,
        allow_empty=True,
    )
    files = [Path(path) for path, _ in samples]
    raw = [classes[index] for _, index in samples]
    if not files:
        raise AuditInputError(
            f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class subfolders"
        )
    return (
        files,
        raw,
        classes,
        [f.relative_to(root).as_posix() for f in files],
        np.arange(len(files)),
    )


def _csv(path: Path):
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns=str.strip)
    except (ValueError, UnicodeDecodeError, OSError) as error:
        raise AuditInputError(f"{path}: cannot read it as CSV ({error})") from None
    missing = [column for column in ("path", "label") if column not in table.columns]
    if missing:
        raise AuditInputError(
            f"{path} has no {' or '.join(missing)} column (it has {', '.join(table.columns)}); an "
            "audit CSV needs the columns path,label"
        )
    if table.empty or (table["path"].str.strip() == "").any():
        raise AuditInputError(f"{path}: no rows, or a row without a path")
    files = [path.parent / p for p in table["path"]]  # an absolute path replaces the CSV's folder
    return (
        files,
        table["label"].str.strip().tolist(),
        None,
        table["path"].tolist(),
        np.arange(len(files)),
    )


def _npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {
                key: stored[key]
                for key in ("images", "labels", "class_names")
                if key in stored.files
            }
    except (ValueError, OSError) as error:
        raise AuditInputError(
            f"{path}: cannot read it as an .npz of numbers and strings ({error})"
        ) from None
    if {"images", "labels"} - set(arrays):
        raise AuditInputError(
            f"{path} needs the arrays images and labels (it has {', '.join(arrays)})"
        )
    images, labels = arrays["images"], arrays["labels"]
    names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else None
    if labels.ndim != 1 or len(images) != len(labels) or not len(labels):
        raise AuditInputError(
            f"{path}: images has {len(images)} rows and labels has shape {labels.shape}; every "
            "image needs one label"
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 2, 3, 4)):
        raise AuditInputError(
            f"{path}: images must be (n, H, W) or (n, H, W, C) with C in 1..4; got {images.shape}"
        )
    if (
        images.dtype.kind == "f"
        and np.isfinite(images).all()
        and images.min() >= 0
        and images.max() <= 1
    ):
        images = np.rint(images * 255)
    elif images.dtype.kind not in "ui" or images.min() < 0 or images.max() > 255:
        raise AuditInputError(
            f"{path}: images must be uint8 or float in [0, 1]; got {images.dtype} values"
        )
    integers = labels.dtype.kind in "ui"
    if not integers and labels.dtype.kind not in "SU":
        raise AuditInputError(f"{path}: labels must be integers or strings; got {labels.dtype}")
    if integers and names is not None and (labels.min() < 0 or labels.max() >= len(names)):
        raise AuditInputError(
            f"{path}: labels must index class_names (0..{len(names) - 1}); found "
            f"{labels.min()}..{labels.max()}"
        )
    raw = [
        names[v]
        if integers and names is not None
        else v.decode()
        if isinstance(v, bytes)
        else str(v)
        for v in labels.tolist()
    ]
    return images.astype(np.uint8), raw, names, None, np.arange(len(raw))


def _open(source, decode: bool):
    """The image of ``source`` (a file or an array), fully decoded or (``decode=False``) its header
    only."""
    if isinstance(source, np.ndarray):
        return Image.fromarray(
            source[..., 0] if source.ndim == 3 and source.shape[2] == 1 else source
        )
    try:
        with Image.open(source) as image:
            if decode:
                image.load()  # decodes everything: truncated or corrupt files fail here
            return (
                ImageOps.exif_transpose(image) if decode else image
            )  # else size and mode from the header
    except Exception as error:  # noqa: BLE001 - Pillow raises many types; each becomes one clear message
        raise AuditInputError(f"cannot read the image {source}: {error}") from None


def _convert(image, rgb: bool, size: int) -> np.ndarray:
    """The image policy on one image: (C, size, size) uint8."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        scale = (
            255 if image.mode == "F" and values.max() <= 1 else 1 / 257
        )  # [0, 1] floats or 16-bit integers
        image = Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    image = image.convert("RGB" if rgb else "L")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2  # the centred square
    if image.size != (size, size):
        image = image.resize(
            (size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
        )
    return np.atleast_3d(np.asarray(image, dtype=np.uint8)).transpose(
        2, 0, 1
    )  # (H, W) or (H, W, 3) -> CHW
