"""pdlib.data: loaders (real Fashion-MNIST, small fake files in each on-disk format), protocols, errors."""

import gzip
import os
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from pdlib import data as pd_data
from pdlib.data import (
    DATASETS,
    DatasetNotFoundError,
    LabelledImages,
    corrupt_labels,
    load_dataset,
    select_classes,
    stratified_subset,
    train_val_split,
)

DEBIAN_TRAIN_IMAGES = pd_data.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"


def normalised(pixels, name, pixel_max=255.0):
    """What load_dataset should return for uint8 pixels of shape (n, C, H, W)."""
    info = DATASETS[name]
    mean, std = (np.array(v).reshape(-1, 1, 1) for v in (info.mean, info.std))
    return (pixels / pixel_max - mean) / std


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Hide Debian's Fashion-MNIST so that only the data root is searched."""
    monkeypatch.setattr(pd_data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")


@pytest.fixture
def offline(monkeypatch):
    """Every torchvision download fails as it would without network; records the attempts."""
    attempts = []

    def refuse(request, *args, **kwargs):
        attempts.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


# --- writing small files in each dataset's on-disk format -------------------------------------


def write_idx(path: Path, array: np.ndarray):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def write_cifar(root: Path, name: str, rng, n_per_file=4):
    """Pickled batches like torchvision's extracted archives; returns {split: (pixels, labels)}."""
    if name == "cifar10":
        folder, files, key = "cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)],
                                                     "test": ["test_batch"]}, b"labels"
        meta = ("batches.meta", {b"label_names": [c.encode() for c in DATASETS[name].class_names]})
    else:
        folder, files, key = "cifar-100-python", {"train": ["train"], "test": ["test"]}, b"fine_labels"
        meta = ("meta", {b"fine_label_names": [c.encode() for c in DATASETS[name].class_names]})
    (root / folder).mkdir(parents=True)
    written = {}
    for split, names in files.items():
        pixels = rng.integers(0, 256, size=(n_per_file * len(names), 3072), dtype=np.uint8)
        labels = rng.integers(0, DATASETS[name].n_classes, size=len(pixels))
        for i, file_name in enumerate(names):
            part = slice(i * n_per_file, (i + 1) * n_per_file)
            with open(root / folder / file_name, "wb") as file:
                pickle.dump({b"data": pixels[part], key: labels[part].tolist()}, file)
        written[split] = (pixels.reshape(-1, 3, 32, 32), labels)
    with open(root / folder / meta[0], "wb") as file:
        pickle.dump(meta[1], file)
    return written


def write_svhn(root: Path, rng, n=20):
    written = {}
    for split in ("train", "test"):
        pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        digits = np.arange(n) % 10
        stored = np.where(digits == 0, 10, digits).astype(np.uint8)  # SVHN stores the digit 0 as 10
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": pixels.transpose(2, 3, 1, 0), "y": stored[:, None]})
        written[split] = (pixels, digits)
    return written


# --- loaders ------------------------------------------------------------------------------------


def test_real_fashion_mnist(tmp_path):
    if not DEBIAN_TRAIN_IMAGES.is_file():
        message = f"{DEBIAN_TRAIN_IMAGES} missing (apt-get install dataset-fashion-mnist)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    train = load_dataset("fashion_mnist", "train", root=tmp_path, download=False)
    test = load_dataset("fashion_mnist", "test", root=tmp_path, download=False)
    assert train.inputs.shape == (60000, 1, 28, 28) and test.inputs.shape == (10000, 1, 28, 28)
    assert train.inputs.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.labels.shape == (60000,) and test.labels.shape == (10000,)
    assert set(train.labels.unique().tolist()) == set(range(10))
    assert np.bincount(test.labels.numpy()).tolist() == [1000] * 10
    assert abs(train.inputs.mean().item()) < 0.01 and abs(train.inputs.std().item() - 1) < 0.01
    assert train.class_names[0] == "T-shirt/top" and train.name == "fashion_mnist"
    # The decompressed copies are torchvision's layout, so torchvision reads them too.
    import torchvision

    reference = torchvision.datasets.FashionMNIST(tmp_path, train=False, download=False)
    assert torch.equal(reference.targets, test.labels)


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_files_in_data_root(tmp_path, rng, no_debian, compress):
    suffix = ".gz" if compress else ""
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 5, 1], dtype=np.uint8)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels)
    loaded = load_dataset("fashion_mnist", "test", root=tmp_path, download=False)
    np.testing.assert_allclose(loaded.inputs.numpy(), normalised(images[:, None], "fashion_mnist"), atol=1e-5)
    assert loaded.labels.tolist() == labels.tolist()
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_round_trip(tmp_path, rng, name):
    written = write_cifar(tmp_path, name, rng)
    for split, (pixels, labels) in written.items():
        loaded = load_dataset(name, split, root=tmp_path, download=False)
        assert loaded.inputs.shape == (len(labels), 3, 32, 32) and loaded.inputs.dtype == torch.float32
        np.testing.assert_allclose(loaded.inputs.numpy(), normalised(pixels, name), atol=1e-5)
        assert loaded.labels.dtype == torch.int64 and loaded.labels.tolist() == labels.tolist()
        assert loaded.class_names == DATASETS[name].class_names and loaded.name == name
    assert len(load_dataset(name, "train", root=tmp_path).labels) == len(written["train"][1])


def test_cifar100_class_names():
    names = DATASETS["cifar100"].class_names
    assert len(names) == 100 == len(set(names)) and list(names) == sorted(names)


def test_svhn_round_trip(tmp_path, rng):
    written = write_svhn(tmp_path, rng)
    for split, (pixels, digits) in written.items():
        loaded = load_dataset("svhn", split, root=tmp_path, download=False)
        np.testing.assert_allclose(loaded.inputs.numpy(), normalised(pixels, "svhn"), atol=1e-5)
        assert loaded.labels.tolist() == digits.tolist()  # 10 on disk reads as 0
        assert loaded.class_names == tuple("0123456789")


def test_data_root_from_environment(tmp_path, rng, monkeypatch):
    written = write_cifar(tmp_path, "cifar10", rng)
    monkeypatch.setenv("PDLIB_DATA", str(tmp_path))
    assert load_dataset("cifar10", "test", download=False).labels.tolist() == written["test"][1].tolist()


def test_results_do_not_share_the_cache(tmp_path, rng):
    write_cifar(tmp_path, "cifar10", rng)
    first = load_dataset("cifar10", "test", root=tmp_path)
    expected_inputs, expected_labels = first.inputs.clone(), first.labels.clone()
    first.inputs.zero_()
    first.labels.fill_(7)
    again = load_dataset("cifar10", "test", root=tmp_path)
    assert torch.equal(again.inputs, expected_inputs) and torch.equal(again.labels, expected_labels)


@pytest.mark.parametrize("name, folder, file_name", [
    ("fashion_mnist", "FashionMNIST/raw", "train-images-idx3-ubyte"),
    ("cifar10", "cifar-10-batches-py", "data_batch_1"),
    ("cifar100", "cifar-100-python", "train"),
    ("svhn", "", "train_32x32.mat"),
])
def test_missing_files_offline(tmp_path, no_debian, offline, name, folder, file_name):
    root = tmp_path / "data"
    expected_folder = str(root / folder) if folder else str(root)
    with pytest.raises(DatasetNotFoundError, match="run once with internet access") as without:
        load_dataset(name, "train", root=root, download=False)
    assert expected_folder in str(without.value) and file_name in str(without.value) and name in str(without.value)
    assert not offline  # download=False never tries the network

    with pytest.raises(DatasetNotFoundError, match="Downloading failed") as failed:
        load_dataset(name, "train", root=root, download=True)
    assert expected_folder in str(failed.value) and file_name in str(failed.value)
    assert offline  # a download was attempted, and refused by the fixture


def test_dataset_not_found_is_both_kinds_of_error():
    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(DatasetNotFoundError, ValueError)


def test_digits(tmp_path):
    train = load_dataset("digits", "train", root=tmp_path / "unused", download=False)
    test = load_dataset("digits", "test", download=False)
    assert train.inputs.shape == (1438, 1, 8, 8) and test.inputs.shape == (359, 1, 8, 8)
    assert train.inputs.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert abs(train.inputs.mean().item()) < 0.01 and abs(train.inputs.std().item() - 1) < 0.01
    assert np.bincount(test.labels.numpy()).min() >= 35  # stratified: about 36 per class
    again = load_dataset("digits", "train")
    assert torch.equal(train.inputs, again.inputs) and torch.equal(train.labels, again.labels)
    assert not (tmp_path / "unused").exists()  # digits is bundled: nothing is written


# --- protocols ------------------------------------------------------------------------------------


def test_select_classes_relabels_in_given_order():
    labels = torch.tensor([0, 1, 2, 3, 2, 1, 0])
    inputs = labels.float().view(-1, 1, 1, 1)
    data = LabelledImages(inputs, labels, ("a", "b", "c", "d"), "toy")
    chosen = select_classes(data, [2, 0])
    assert chosen.labels.tolist() == [1, 0, 0, 1] and chosen.inputs.flatten().tolist() == [0, 2, 2, 0]
    assert chosen.class_names == ("c", "a") and chosen.name == "toy"
    assert chosen.labels.dtype == torch.int64


def test_stratified_subset_counts():
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    index = stratified_subset(labels, 100, seed=0)
    assert index.dtype == np.int64 and np.all(np.diff(index) > 0)
    assert np.bincount(labels[index]).tolist() == [50, 30, 20]
    # 2.5, 1.5, 1.0 -> floors 2, 1, 1; the one left over goes to the first of the tied remainders
    small = np.repeat([0, 1, 2], [5, 3, 2])
    assert np.bincount(small[stratified_subset(torch.as_tensor(small), 5, seed=1)]).tolist() == [3, 1, 1]


def test_stratified_subset_largest_remainder(rng):
    labels = rng.integers(0, 7, size=1000)
    counts = np.bincount(labels)
    for n in (1, 13, 500, 999, 1000):
        got = np.bincount(labels[stratified_subset(labels, n, seed=n)], minlength=7)
        exact = n * counts / len(labels)
        assert got.sum() == n and np.all(got >= np.floor(exact)) and np.all(got <= np.ceil(exact))


def test_stratified_subset_seeded():
    labels = np.arange(1000) % 10
    assert np.array_equal(stratified_subset(labels, 100, 3), stratified_subset(labels, 100, 3))
    assert not np.array_equal(stratified_subset(labels, 100, 3), stratified_subset(labels, 100, 4))


def test_corrupt_labels(rng):
    labels = rng.integers(0, 10, size=1001)
    original = labels.copy()
    new, corrupted = corrupt_labels(labels, 0.25, 10, seed=0)
    assert np.array_equal(labels, original)  # input untouched
    assert new.dtype == np.int64 and corrupted.dtype == bool
    assert corrupted.sum() == round(0.25 * 1001)
    assert np.all(new[corrupted] != labels[corrupted]) and np.array_equal(new[~corrupted], labels[~corrupted])
    assert new.min() >= 0 and new.max() < 10
    again_new, again_corrupted = corrupt_labels(torch.as_tensor(labels), 0.25, 10, seed=0)
    assert np.array_equal(new, again_new) and np.array_equal(corrupted, again_corrupted)
    assert not np.array_equal(corrupt_labels(labels, 0.25, 10, seed=1)[1], corrupted)


def test_corrupt_labels_uses_every_other_class():
    new, _ = corrupt_labels(np.zeros(3000, dtype=np.int64), 1.0, 4, seed=0)
    counts = np.bincount(new, minlength=4)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) < 100)


def test_corrupt_labels_edge_rates():
    labels = np.arange(10) % 2
    assert not corrupt_labels(labels, 0.0, 2, seed=0)[1].any()
    new, corrupted = corrupt_labels(labels, 1.0, 2, seed=0)
    assert corrupted.all() and np.array_equal(new, 1 - labels)


def test_corrupt_labels_does_not_write_into_tensor():
    labels = torch.arange(20) % 5
    original = labels.clone()
    corrupt_labels(labels, 0.5, 5, seed=0)
    assert torch.equal(labels, original)


def test_train_val_split():
    in_train = train_val_split(1001, seed=0)
    assert in_train.dtype == bool and in_train.shape == (1001,) and in_train.sum() == round(0.9 * 1001)
    assert np.array_equal(in_train, train_val_split(1001, seed=0))
    assert not np.array_equal(in_train, train_val_split(1001, seed=1))
    assert train_val_split(10, seed=0, train_fraction=0.5).sum() == 5


# --- bad inputs -----------------------------------------------------------------------------------

TOY = LabelledImages(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 0]), ("a", "b", "c"), "toy")


@pytest.mark.parametrize("call, error, match", [
    (lambda: load_dataset("mnist"), ValueError, "name must be one of .*fashion_mnist.*digits"),
    (lambda: load_dataset("digits", "val"), ValueError, "split"),
    (lambda: load_dataset("digits", root=3), TypeError, "root"),
    (lambda: select_classes(TOY, [0, 3]), ValueError, "classes"),
    (lambda: select_classes(TOY, [1, 1]), ValueError, "classes must be distinct"),
    (lambda: select_classes(TOY, []), ValueError, "classes is empty"),
    (lambda: select_classes((TOY.inputs, TOY.labels), [0]), TypeError, "data"),
    (lambda: stratified_subset([0, 1, 1], 4, 0), ValueError, "n=4"),
    (lambda: stratified_subset([0, 1, 1], 0, 0), ValueError, "n must be >= 1"),
    (lambda: stratified_subset([], 1, 0), ValueError, "labels is empty"),
    (lambda: stratified_subset([0, -1], 1, 0), ValueError, "labels"),
    (lambda: stratified_subset([0.5, 1.0], 1, 0), TypeError, "labels"),
    (lambda: corrupt_labels([0, 1], -0.1, 2, 0), ValueError, r"rate must be in \[0, 1\]"),
    (lambda: corrupt_labels([0, 1], 1.5, 2, 0), ValueError, "rate"),
    (lambda: corrupt_labels([0, 1], "0.1", 2, 0), TypeError, "rate"),
    (lambda: corrupt_labels([0, 0], 0.5, 1, 0), ValueError, "n_classes must be >= 2"),
    (lambda: corrupt_labels([0, 2], 0.5, 2, 0), ValueError, "labels contains class 2"),
    (lambda: corrupt_labels([], 0.5, 2, 0), ValueError, "labels is empty"),
    (lambda: train_val_split(10, 0, 0.0), ValueError, r"train_fraction must be in \(0, 1\)"),
    (lambda: train_val_split(10, 0, 1.0), ValueError, "train_fraction"),
    (lambda: train_val_split(0, 0), ValueError, "n must be >= 1"),
    (lambda: train_val_split(2.5, 0), TypeError, "n must be an integer"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
