"""Small stand-in datasets written in each real dataset's on-disk format, for the paper dry run.

``make book PROFILE=paper-dryrun`` runs the paper profile's plan (Fashion-MNIST, SVHN, CIFAR10,
CIFAR100; MLP, VGG16, ResNet18) at toy scale on a CPU, without a download. The files written
here have the real formats, so every loader and code path of a GPU run is exercised:

- Fashion-MNIST: gzipped IDX files (``FashionMNIST/raw/*-idx?-ubyte.gz``);
- CIFAR10 and CIFAR100: the python pickles of the official archives;
- SVHN: ``train_32x32.mat`` and ``test_32x32.mat`` (label 10 stands for the digit 0).

Images are learnable: each class has its own smooth template, plus pixel noise.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

SIZES = {"train": 600, "test": 200}


def _images(rng, n: int, n_classes: int, channels: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, channels) uint8 images and (n,) labels, every class equally often."""
    labels = np.arange(n) % n_classes
    rng.shuffle(labels)
    coarse = rng.uniform(0, 255, (n_classes, 4, 4, channels))
    templates = coarse.repeat(size // 4 + 1, axis=1).repeat(size // 4 + 1, axis=2)[:, :size, :size]
    pixels = templates[labels] + rng.normal(0, 40, (n, size, size, channels))
    return np.clip(pixels, 0, 255).astype(np.uint8), labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (gzipped when ``path`` ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wb") as file:
        file.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fashion_mnist(root: Path, rng) -> None:
    raw = root / "FashionMNIST" / "raw"
    for split, prefix in (("train", "train"), ("test", "t10k")):
        pixels, labels = _images(rng, SIZES[split], 10, 1, 28)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", pixels[..., 0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))


def write_cifar(root: Path, name: str, rng) -> None:
    """``cifar10`` (five data batches and a test batch) or ``cifar100`` (train and test)."""
    n_classes, folder, key = (
        (10, "cifar-10-batches-py", b"labels")
        if name == "cifar10"
        else (100, "cifar-100-python", b"fine_labels")
    )
    files = {
        "train": [f"data_batch_{i}" for i in range(1, 6)] if name == "cifar10" else ["train"],
        "test": ["test_batch"] if name == "cifar10" else ["test"],
    }
    (root / folder).mkdir(parents=True, exist_ok=True)
    for split, names in files.items():
        pixels, labels = _images(rng, SIZES[split], n_classes, 3, 32)
        flat = pixels.transpose(0, 3, 1, 2).reshape(len(pixels), -1)  # rows of R, G, B planes
        for part, file_name in zip(
            np.array_split(np.arange(len(labels)), len(names)), names, strict=False
        ):
            with open(
                root / folder / file_name, "wb"
            ) as file:  # bytes keys, as the Python 2 originals
                pickle.dump({b"data": flat[part], key: labels[part].tolist()}, file)


def write_svhn(root: Path, rng) -> None:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        pixels, labels = _images(rng, SIZES[split], 10, 3, 32)
        stored = np.where(labels == 0, 10, labels)  # SVHN stores the digit 0 as 10
        scipy.io.savemat(
            root / f"{split}_32x32.mat", {"X": pixels.transpose(1, 2, 3, 0), "y": stored[:, None]}
        )


def write_standins(root: Path, seed: int = 0) -> Path:
    """Write all four stand-in datasets under ``root`` (a data root for ``PDLIB_DATA``)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    write_fashion_mnist(root, rng)
    write_cifar(root, "cifar10", rng)
    write_cifar(root, "cifar100", rng)
    write_svhn(root, rng)
    return root
