"""Datasets made from images in memory, loadable by name like the built-in ones (``pdlib audit``).

:func:`register_arrays` writes the images once to ``<folder>/<hash>.npz`` and returns the name
``"file:<hash>"``, which :func:`pdlib.data.load_dataset` and :class:`pdlib.runs.RunConfig`
accept: a run cache keyed by it never mixes two datasets.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from pdlib.cache import write_atomically
from pdlib.datatypes import FILE_PREFIX, DatasetInfo, DatasetNotFoundError

__all__ = ["register_arrays", "file_info", "read_file"]


def register_arrays(pixels, labels, class_names, *, folder, is_test=None) -> str:
    """Make images in memory loadable by name, like the built-in datasets (for ``pdlib audit``).

    The images are written once to ``<folder>/<hash>.npz`` (atomically); the name is
    ``"file:<hash>"`` with a hash of the contents, so a run cache keyed by it never mixes two
    datasets. ``$PDLIB_FILE_DATA`` is set to ``folder`` so that child processes find the file.

    Parameters
    ----------
    pixels : ndarray of uint8, shape (n, C, H, H)
    labels : ndarray of int, shape (n,), values in ``[0, len(class_names))``
    class_names : sequence of str
    folder : path-like
    is_test : ndarray of bool, shape (n,), optional
        Rows that form the ``"test"`` split; by default every row is in ``"train"``.

    Returns
    -------
    str
        The dataset's name, for :func:`load_dataset` and :class:`pdlib.runs.RunConfig`.
    """
    pixels, labels = (
        np.ascontiguousarray(pixels, dtype=np.uint8),
        np.asarray(labels, dtype=np.int64),
    )
    is_test = np.zeros(len(labels), bool) if is_test is None else np.asarray(is_test, dtype=bool)
    if (
        pixels.ndim != 4
        or pixels.shape[2] != pixels.shape[3]
        or not len(pixels) == len(labels) == len(is_test)
    ):
        raise ValueError(
            "pixels must be (n, C, H, H) uint8 with one label per image (and one is_test flag per "
            f"image); got {pixels.shape}, {labels.shape}, {is_test.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(
            f"labels must be in [0, {len(class_names)}), the indices of class_names; found "
            f"[{labels.min()}, {labels.max()}]"
        )
    digest = hashlib.sha256()
    for part in (
        pixels.tobytes(),
        labels.tobytes(),
        is_test.tobytes(),
        "\0".join(class_names).encode(),
    ):
        digest.update(part)
    name, folder = FILE_PREFIX + digest.hexdigest()[:16], Path(folder).resolve()
    path = folder / f"{name[len(FILE_PREFIX) :]}.npz"
    if not path.exists():
        train = pixels[~is_test].astype(np.float64) / 255.0
        arrays = {
            "pixels": pixels,
            "labels": labels,
            "is_test": is_test,
            "class_names": np.asarray(class_names, dtype=str),
            "mean": train.mean(axis=(0, 2, 3)),
            "std": np.maximum(train.std(axis=(0, 2, 3)), 1e-3),
        }

        def save(tmp: Path) -> None:
            with tmp.open("wb") as handle:  # a handle: given a path, savez would append ".npz"
                np.savez(handle, **arrays)

        write_atomically(path, save)
    os.environ["PDLIB_FILE_DATA"] = str(folder)
    return name


def file_path(name: str) -> Path:
    folder = os.environ.get("PDLIB_FILE_DATA")
    path = Path(folder or ".") / f"{name[len(FILE_PREFIX) :]}.npz"
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{name}: no {path.name} in $PDLIB_FILE_DATA ({folder}); register it with "
            "pdlib.userdata.register_arrays first"
        )
    return path


@functools.lru_cache(maxsize=8)
def file_info(name: str) -> DatasetInfo:
    with np.load(file_path(name), allow_pickle=False) as data:
        classes, shape = tuple(str(c) for c in data["class_names"]), data["pixels"].shape
        return DatasetInfo(
            name,
            len(classes),
            shape[1],
            shape[2],
            classes,
            tuple(data["mean"].tolist()),
            tuple(data["std"].tolist()),
        )


def read_file(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(file_path(name), allow_pickle=False) as data:
        rows = data["is_test"] if split == "test" else ~data["is_test"]
        return data["pixels"][rows], data["labels"][rows]
