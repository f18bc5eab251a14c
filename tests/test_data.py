"""pdlib.data: loaders for real Fashion-MNIST and for small files in each on-disk format (written by
the
book's stand-in writers), the data root, and clear errors."""

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from pdlib import data as pd_data
from pdlib.data import DATASETS, DatasetNotFoundError, dataset_info, load_dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "book"))
import standins  # noqa: E402  (the writers of book/standins.py: the real on-disk formats)

DEBIAN_TRAIN_IMAGES = pd_data.DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"


def normalised(pixels, name, pixel_max=255.0):
    """What load_dataset should return for uint8 pixels of shape (n, C, H, W)."""
    info = DATASETS[name]
    mean, std = (np.array(v).reshape(-1, 1, 1) for v in (info.mean, info.std))
    return (pixels / pixel_max - mean) / std


@pytest.fixture
def written(monkeypatch):
    """Run the stand-in writers small, and record what they write: {split: (pixels (n, C, H, W),
    labels)} per call."""
    monkeypatch.setattr(standins, "SIZES", {"train": 30, "test": 12})
    calls = []
    original = standins._images

    def recording(*args):
        pixels, labels = original(*args)
        calls.append((pixels.transpose(0, 3, 1, 2).copy(), labels.copy()))
        return pixels, labels

    monkeypatch.setattr(standins, "_images", recording)
    return calls


@pytest.fixture(autouse=True)
def fresh_reads():
    """Files are read once per process and cached by path: tests that rewrite a folder must not see
    old reads."""
    pd_data._read.cache_clear()
    yield
    pd_data._read.cache_clear()


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


# --- real files --------------------------------------------------------------------------------


@pytest.mark.slow
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
    assert set(train.labels.unique().tolist()) == set(range(10))
    assert np.bincount(test.labels.numpy()).tolist() == [1000] * 10
    assert abs(train.inputs.mean().item()) < 0.01 and abs(train.inputs.std().item() - 1) < 0.01
    assert train.class_names[0] == "T-shirt/top" and train.name == "fashion_mnist"
    # The decompressed copies are torchvision's layout, so torchvision reads them too.
    import torchvision

    reference = torchvision.datasets.FashionMNIST(tmp_path, train=False, download=False)
    assert torch.equal(reference.targets, test.labels)


# --- each on-disk format, written by the stand-in writers --------------------------------------


def test_fashion_mnist_stand_in_round_trip(tmp_path, written, no_debian):
    standins.write_fashion_mnist(tmp_path, np.random.default_rng(0))
    for split, (pixels, labels) in zip(("train", "test"), written, strict=True):
        loaded = load_dataset("fashion_mnist", split, root=tmp_path, download=False)
        assert (
            loaded.inputs.shape == (len(labels), 1, 28, 28) and loaded.inputs.dtype == torch.float32
        )
        np.testing.assert_allclose(
            loaded.inputs.numpy(), normalised(pixels, "fashion_mnist"), atol=1e-5
        )
        assert loaded.labels.dtype == torch.int64 and loaded.labels.tolist() == labels.tolist()
    # the gzipped files were decompressed beside them, where torchvision keeps them
    assert (tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_files_in_the_data_root_itself(tmp_path, rng, no_debian, compress):
    suffix = ".gz" if compress else ""
    images = rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 5, 1], dtype=np.uint8)
    standins.write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images)
    standins.write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels)
    loaded = load_dataset("fashion_mnist", "test", root=tmp_path, download=False)
    np.testing.assert_allclose(
        loaded.inputs.numpy(), normalised(images[:, None], "fashion_mnist"), atol=1e-5
    )
    assert loaded.labels.tolist() == labels.tolist()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_stand_in_round_trip(tmp_path, written, name):
    standins.write_cifar(tmp_path, name, np.random.default_rng(1))
    for split, (pixels, labels) in zip(("train", "test"), written, strict=True):
        loaded = load_dataset(name, split, root=tmp_path, download=False)
        assert (
            loaded.inputs.shape == (len(labels), 3, 32, 32) and loaded.inputs.dtype == torch.float32
        )
        np.testing.assert_allclose(loaded.inputs.numpy(), normalised(pixels, name), atol=1e-5)
        assert loaded.labels.dtype == torch.int64 and loaded.labels.tolist() == labels.tolist()
        assert loaded.class_names == DATASETS[name].class_names and loaded.name == name


def test_cifar100_class_names():
    names = DATASETS["cifar100"].class_names
    assert len(names) == 100 == len(set(names)) and list(names) == sorted(names)


def test_svhn_stand_in_round_trip(tmp_path, written):
    standins.write_svhn(tmp_path, np.random.default_rng(2))
    for split, (pixels, digits) in zip(("train", "test"), written, strict=True):
        loaded = load_dataset("svhn", split, root=tmp_path, download=False)
        np.testing.assert_allclose(loaded.inputs.numpy(), normalised(pixels, "svhn"), atol=1e-5)
        assert loaded.labels.tolist() == digits.tolist()  # 10 on disk reads as 0
        assert 0 in digits.tolist() and loaded.class_names == tuple("0123456789")


def test_write_standins_gives_a_data_root_for_every_paper_dataset(
    tmp_path, written, no_debian, monkeypatch
):
    monkeypatch.setenv("PDLIB_DATA", str(standins.write_standins(tmp_path)))
    for name in ("fashion_mnist", "svhn", "cifar10", "cifar100"):
        for split, size in (("train", 30), ("test", 12)):
            assert len(load_dataset(name, split, download=False).labels) == size


def test_data_root_from_environment(tmp_path, written, monkeypatch):
    standins.write_cifar(tmp_path, "cifar10", np.random.default_rng(3))
    monkeypatch.setenv("PDLIB_DATA", str(tmp_path))
    assert pd_data.data_root() == tmp_path
    assert load_dataset("cifar10", "test", download=False).labels.tolist() == written[1][1].tolist()
    assert pd_data.data_root(tmp_path / "x") == tmp_path / "x"  # an explicit root wins


def test_results_do_not_share_the_cache(tmp_path, written):
    standins.write_cifar(tmp_path, "cifar10", np.random.default_rng(4))
    first = load_dataset("cifar10", "test", root=tmp_path)
    expected_inputs, expected_labels = first.inputs.clone(), first.labels.clone()
    first.inputs.zero_()
    first.labels.fill_(7)
    again = load_dataset("cifar10", "test", root=tmp_path)
    assert torch.equal(again.inputs, expected_inputs) and torch.equal(again.labels, expected_labels)


@pytest.mark.parametrize(
    "name, folder, file_name",
    [
        ("fashion_mnist", "FashionMNIST/raw", "train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py", "data_batch_1"),
        ("cifar100", "cifar-100-python", "train"),
        ("svhn", "", "train_32x32.mat"),
    ],
)
def test_missing_files_offline(tmp_path, no_debian, offline, name, folder, file_name):
    root = tmp_path / "data"
    expected_folder = str(root / folder) if folder else str(root)
    with pytest.raises(
        DatasetNotFoundError, match="python -m pdlib download .* once with internet access"
    ) as without:
        load_dataset(name, "train", root=root, download=False)
    assert (
        expected_folder in str(without.value)
        and file_name in str(without.value)
        and name in str(without.value)
    )
    assert not offline  # download=False never tries the network

    with pytest.raises(DatasetNotFoundError, match="Downloading failed") as failed:
        load_dataset(name, "train", root=root, download=True)
    assert expected_folder in str(failed.value) and file_name in str(failed.value)
    assert offline  # a download was attempted, and refused by the fixture


def test_dataset_not_found_is_both_kinds_of_error():
    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(
        DatasetNotFoundError, ValueError
    )


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


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: load_dataset("mnist"), ValueError, "name must be one of .*fashion_mnist.*digits"),
        (lambda: load_dataset("digits", "val"), ValueError, "split"),
        (lambda: load_dataset("digits", root=3), TypeError, "root"),
        (lambda: dataset_info(3), ValueError, "name must be one of"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_shared_split_is_made_once_and_equals_a_fresh_load():
    fresh = load_dataset("digits", "train")
    shared = load_dataset("digits", "train", shared=True)
    assert shared is load_dataset("digits", "train", shared=True)  # one copy per process
    assert torch.equal(shared.inputs, fresh.inputs) and torch.equal(shared.labels, fresh.labels)
    assert shared.inputs.data_ptr() != fresh.inputs.data_ptr()  # the plain load stays fresh
    pd_data._read.cache_clear()  # files read again: the shared copy is made again
    assert load_dataset("digits", "train", shared=True) is not shared
