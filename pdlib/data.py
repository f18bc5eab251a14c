"""Image classification datasets as normalised tensors: reading, downloading and verifying files.

Loaders return :class:`LabelledImages` with ``(n, C, H, W)`` float32 inputs normalised with the
dataset's fixed per-channel mean and std (:data:`DATASETS`). Files live under the data root
(:func:`data_root`); Fashion-MNIST is also found where Debian's ``dataset-fashion-mnist`` puts it.
Missing files are downloaded through torchvision when ``download=True``; offline,
:class:`DatasetNotFoundError` says which files to put where.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pdlib.cache import write_atomically
from pdlib.datatypes import FILE_PREFIX, DatasetInfo, DatasetNotFoundError, LabelledImages
from pdlib.sampling import stratified_subset
from pdlib.userdata import file_info, read_file

#: Where Debian's ``dataset-fashion-mnist`` package installs the gzipped IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

_SPLITS = ("train", "test")
_DIGITS_SEED = (
    0  # fixes the digits train/test split for good: changing it changes every result on digits
)
_DIGITS_TEST_FRACTION = 0.2


_CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse "
    "mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy "
    "porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television "
    "tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()

_DIGIT_NAMES = tuple(str(d) for d in range(10))

#: Every dataset :func:`load_dataset` knows, by name.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "fashion_mnist",
            10,
            1,
            28,
            (
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
            (0.2860,),
            (0.3530,),
        ),
        DatasetInfo(
            "cifar10",
            10,
            3,
            32,
            (
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ),
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
        ),
        DatasetInfo(
            "cifar100",
            100,
            3,
            32,
            tuple(_CIFAR100_CLASSES),
            (0.5071, 0.4865, 0.4409),
            (0.2673, 0.2564, 0.2762),
        ),
        DatasetInfo(
            "svhn", 10, 3, 32, _DIGIT_NAMES, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
        ),
        # Computed once from the digits training split (pixel values / 16).
        DatasetInfo("digits", 10, 1, 8, _DIGIT_NAMES, (0.3051,), (0.3758,)),
    )
}

# Brightest pixel value on disk: images are scaled by it to [0, 1] before normalising.
_PIXEL_MAX = {"digits": 16.0}


class _Missing(Exception):
    """Raised by the readers: the files ``files`` are expected in ``folder``."""

    def __init__(self, folder: Path, files: Sequence[str], hint: str = ""):
        super().__init__(folder, files)
        self.folder, self.files, self.hint = folder, tuple(files), hint


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``$PDLIB_DATA``, else the repository's ``data``."""
    if root is None:
        root = os.environ.get("PDLIB_DATA") or Path(__file__).resolve().parents[1] / "data"
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    return Path(root).expanduser()


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    download: bool = True,
    shared: bool = False,
) -> LabelledImages:
    """Load one split of a dataset as normalised tensors (fresh tensors each call; files read once
    per process).

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS` (``"digits"``: scikit-learn's 8x8 digits, always offline).
    split : {"train", "test"}
        The official split; for digits a fixed stratified 80:20 split.
    root : path-like, optional
        See :func:`data_root`.
    download : bool
        Download missing files through torchvision.
    shared : bool
        Return the process's one normalised copy of the split instead of fresh tensors: read it
        or index it (which copies), never write into it. A run takes a few thousand images of a
        split, and normalising all of it for every network cost more than training a small MLP.

    Returns
    -------
    LabelledImages

    Raises
    ------
    DatasetNotFoundError
        If the files are missing and cannot be downloaded.
    """
    dataset_info(name)  # refuses an unknown name
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = data_root(root)
    # digits ignores the data root; one cache entry serves every root.
    key = "" if name == "digits" or name.startswith(FILE_PREFIX) else str(folder.resolve())
    try:
        pixels, labels = _read(name, split, key)
    except _Missing as missing:
        if not download:
            raise _not_found(name, split, missing, "") from None
        _download(name, split, folder, missing)
        pixels, labels = _read(name, split, key)
    if not shared:
        return _normalise(name, pixels, labels)
    made_from, images = _SHARED.get((name, split, key), (None, None))
    if made_from is not pixels:  # first use, or the files were read again (_read's cache cleared)
        if len(_SHARED) >= 4:
            _SHARED.pop(next(iter(_SHARED)))
        images = _normalise(name, pixels, labels)
        _SHARED[(name, split, key)] = (pixels, images)
    return images


def _normalise(name: str, pixels: np.ndarray, labels: np.ndarray) -> LabelledImages:
    info = dataset_info(name)
    inputs = torch.from_numpy(pixels.astype(np.float32)).div_(_PIXEL_MAX.get(name, 255.0))
    inputs.sub_(torch.tensor(info.mean).view(-1, 1, 1)).div_(torch.tensor(info.std).view(-1, 1, 1))
    return LabelledImages(inputs, torch.from_numpy(labels.copy()), info.class_names, name)


#: The shared splits of load_dataset(shared=True): (name, split, root) -> (the pixels they were
#: made from, the normalised images); at most 4, the oldest dropped first.
_SHARED: dict = {}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a dataset of :data:`DATASETS` or of one made from arrays
    (``file:`` names)."""
    if isinstance(name, str) and name.startswith(FILE_PREFIX):
        return file_info(name)
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(
            f"name must be one of {', '.join(DATASETS)} or a registered 'file:' "
            f"dataset; got {name!r}"
        )
    return DATASETS[name]


# --- reading: uint8 pixels (n, C, H, W) and int64 labels (n,), or _Missing. Parsed here, not by
# ---------- torchvision, whose md5 checks Debian's re-compressed files (and the tests' small files)
# fail.


@functools.lru_cache(maxsize=8)
def _read(name: str, split: str, root: str) -> tuple[np.ndarray, np.ndarray]:
    if name.startswith(FILE_PREFIX):
        reader = read_file
    else:
        reader = _READERS[name]
    pixels, labels = (
        reader(name, split) if name.startswith(FILE_PREFIX) else reader(split, Path(root))
    )
    pixels, labels = np.ascontiguousarray(pixels), labels.astype(np.int64)
    for array in (pixels, labels):
        array.setflags(write=False)  # cached: a stray in-place write would corrupt later loads
    return pixels, labels


def _read_fashion_mnist(split: str, root: Path):
    prefix = "train" if split == "train" else "t10k"
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    raw = (
        root / "FashionMNIST" / "raw"
    )  # where torchvision keeps them, so either can use the other's
    found = [_find(name, (raw, root, DEBIAN_FASHION_MNIST)) for name in names]
    if None in found:
        raise _Missing(
            raw,
            names,
            "(plain or .gz; `apt-get install dataset-fashion-mnist` puts them in "
            f"{DEBIAN_FASHION_MNIST}, which is also searched)",
        )
    images, labels = (
        _read_idx(_decompressed(path, raw / name)) for path, name in zip(found, names, strict=False)
    )
    return images[:, None], labels


def _find(name: str, folders) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _decompressed(path: Path, target: Path) -> Path:
    """``target``, written from ``path`` if needed; ``path`` itself if ``target`` cannot be
    written."""
    if path == target:
        return path

    def copy(tmp: Path) -> None:
        with _open(path) as source, tmp.open("wb") as out:
            shutil.copyfileobj(source, out)

    try:
        return write_atomically(target, copy)  # a concurrent reader never sees half a file
    except OSError:
        return path  # e.g. a read-only data root: read the found file in place


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (the MNIST format)."""
    with _open(path) as file:
        data = file.read()
    zeros, dtype, ndim = data[0:2], data[2], data[3]
    if zeros != b"\0\0" or dtype != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _read_cifar(archive: str, folder_name: str, files: dict, label_key: str):
    def read(split: str, root: Path):
        folder = root / folder_name
        names = files[split]
        if not all((folder / name).is_file() for name in names):
            raise _Missing(folder, names, f"(as extracted from {archive} into {root})")
        batches = [_unpickle(folder / name) for name in names]
        pixels = np.concatenate([batch["data"] for batch in batches]).reshape(-1, 3, 32, 32)
        return pixels, np.concatenate([np.asarray(batch[label_key]) for batch in batches])

    return read


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as file:
        # latin1 reads the Python 2 pickles CIFAR ships; their keys come back as str, newer ones as
        # bytes.
        batch = pickle.load(file, encoding="latin1")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}


def _read_svhn(split: str, root: Path):
    from scipy.io import loadmat  # scipy comes with scikit-learn; only SVHN needs it

    name = f"{split}_32x32.mat"
    if not (root / name).is_file():
        raise _Missing(root, (name,))
    mat = loadmat(root / name)
    # X is (H, W, C, n); label 10 stands for the digit 0.
    return mat["X"].transpose(3, 2, 0, 1), mat["y"].astype(np.int64).ravel() % 10


def _read_digits(split: str, root: Path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = digits.target.astype(np.int64)
    test = np.zeros(len(labels), dtype=bool)
    test[stratified_subset(labels, round(_DIGITS_TEST_FRACTION * len(labels)), _DIGITS_SEED)] = True
    keep = test if split == "test" else ~test
    return digits.images[keep, None].astype(np.uint8), labels[keep]


_READERS = {
    "fashion_mnist": _read_fashion_mnist,
    "cifar10": _read_cifar(
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        "labels",
    ),
    "cifar100": _read_cifar(
        "cifar-100-python.tar.gz",
        "cifar-100-python",
        {"train": ["train"], "test": ["test"]},
        "fine_labels",
    ),
    "svhn": _read_svhn,
    "digits": _read_digits,
}


# --- downloading, through torchvision's dataset classes (they know the URLs and md5 sums)
# -------------------

#: Images per split of each downloadable dataset: a download is verified against these counts.
SPLIT_SIZES = {
    "fashion_mnist": (60000, 10000),
    "cifar10": (50000, 10000),
    "cifar100": (50000, 10000),
    "svhn": (73257, 26032),
}


def download_datasets(
    names=tuple(SPLIT_SIZES), *, root: str | os.PathLike | None = None, log=print
) -> None:
    """Download, verify and install datasets into the data root (``python -m pdlib download``).

    Each is fetched into a temporary folder (torchvision checks md5 sums), moved into place when
    complete and counted against :data:`SPLIT_SIZES`, so a failure leaves nothing half-written.
    ``names``: keys of :data:`SPLIT_SIZES`; ``log`` gets one line per dataset. Raises
    :class:`DatasetNotFoundError` when a download fails or holds the wrong number of images.
    """
    import torchvision.datasets as tvd  # slow to import; only needed here

    folder = data_root(root)
    makers = {
        "fashion_mnist": lambda where, split: tvd.FashionMNIST(
            where, train=split == "train", download=True
        ),
        "cifar10": lambda where, split: tvd.CIFAR10(where, train=split == "train", download=True),
        "cifar100": lambda where, split: tvd.CIFAR100(where, train=split == "train", download=True),
        "svhn": lambda where, split: tvd.SVHN(where, split=split, download=True),
    }
    for name in names:
        if name not in SPLIT_SIZES:
            raise ValueError(f"cannot download {name!r}; downloadable: {', '.join(SPLIT_SIZES)}")
        if _counts(name, folder) == SPLIT_SIZES[name]:
            log(
                f"{name}: found in {folder}, {SPLIT_SIZES[name][0]} + {SPLIT_SIZES[name][1]} images"
            )
            continue
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".download-{name}-", dir=folder))
        try:
            for split in _SPLITS:
                makers[name](staging, split)
            for entry in staging.iterdir():
                target = folder / entry.name
                if (
                    target.is_dir() and entry.is_dir()
                ):  # e.g. FashionMNIST/raw beside a partial copy
                    shutil.rmtree(target)
                os.replace(entry, target)
        except (
            OSError,
            RuntimeError,
        ) as error:  # URLError is an OSError; bad checksums are RuntimeError
            raise DatasetNotFoundError(
                f"downloading {name} into {folder} failed: {error}"
            ) from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        counts = _counts(name, folder)
        if counts != SPLIT_SIZES[name]:
            raise DatasetNotFoundError(
                f"{name} in {folder} holds {counts} images, expected {SPLIT_SIZES[name]}"
            )
        log(f"{name}: downloaded and verified, {counts[0]} + {counts[1]} images in {folder}")


def _counts(name: str, folder: Path) -> tuple[int, int] | None:
    _read.cache_clear()
    try:
        return tuple(len(_read(name, split, str(folder.resolve()))[1]) for split in _SPLITS)
    except _Missing:
        return None


def _download(name: str, split: str, root: Path, missing: _Missing) -> None:
    try:
        download_datasets([name], root=root, log=lambda line: None)
    except DatasetNotFoundError as error:
        raise _not_found(name, split, missing, f"Downloading failed: {error}\n") from error
    _read.cache_clear()


def _not_found(name: str, split: str, missing: _Missing, reason: str) -> DatasetNotFoundError:
    hint = f" {missing.hint}" if missing.hint else ""
    return DatasetNotFoundError(
        f"{name} ({split} split) not found. {reason}Expected {', '.join(missing.files)}{hint} in "
        f"the folder {missing.folder}. Put them there, or run `python -m pdlib download {name}` "
        "once with internet access; set PDLIB_DATA or pass root= to use another data folder."
    )
