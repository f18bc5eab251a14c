"""pdlib.userdata: images in memory registered as "file:" datasets, loaded like the built-in
ones."""

import os

import numpy as np
import pytest
import torch

from pdlib import data as pd_data
from pdlib.data import FILE_PREFIX, DatasetNotFoundError, dataset_info, load_dataset
from pdlib.userdata import register_arrays


@pytest.fixture(autouse=True)
def fresh_reads():
    """Files are read once per process and cached by name."""
    pd_data._read.cache_clear()
    yield
    pd_data._read.cache_clear()


@pytest.fixture
def file_data(monkeypatch):
    """register_arrays sets $PDLIB_FILE_DATA; give it back afterwards."""
    monkeypatch.delenv("PDLIB_FILE_DATA", raising=False)


def images(rng, n=40, channels=3, size=6):
    pixels = rng.integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)
    return pixels, np.arange(n) % 4


def test_register_arrays_round_trip(tmp_path, rng, file_data):
    pixels, labels = images(rng)
    is_test = np.arange(40) >= 30
    name = register_arrays(pixels, labels, ["a", "b", "c", "d"], folder=tmp_path, is_test=is_test)
    assert name.startswith(FILE_PREFIX) and os.environ["PDLIB_FILE_DATA"] == str(tmp_path.resolve())
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    # normalised with the mean and std of the file's own training rows, per channel
    scaled = pixels[~is_test] / 255.0
    mean, std = scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3))
    np.testing.assert_allclose(
        train.inputs.numpy(), (scaled - mean[:, None, None]) / std[:, None, None], atol=1e-5
    )
    np.testing.assert_allclose(
        test.inputs.numpy(),
        (pixels[is_test] / 255.0 - mean[:, None, None]) / std[:, None, None],
        atol=1e-5,
    )
    assert (
        train.labels.tolist() == labels[~is_test].tolist()
        and test.labels.tolist() == labels[is_test].tolist()
    )
    assert train.class_names == ("a", "b", "c", "d") and train.name == name
    info = dataset_info(name)
    assert (info.n_classes, info.in_channels, info.image_size) == (4, 3, 6)
    np.testing.assert_allclose(info.mean, mean) and np.testing.assert_allclose(info.std, std)


def test_register_arrays_has_an_empty_test_split_by_default(tmp_path, rng, file_data):
    pixels, labels = images(rng, channels=1)
    name = register_arrays(pixels, labels, list("wxyz"), folder=tmp_path)
    assert len(load_dataset(name, "train").labels) == 40
    test = load_dataset(name, "test")
    assert test.inputs.shape == (0, 1, 6, 6) and test.labels.shape == (0,)


def test_register_arrays_names_by_content(tmp_path, rng, file_data):
    pixels, labels = images(rng)
    name = register_arrays(pixels, labels, list("abcd"), folder=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    written = path.stat().st_mtime_ns
    assert (
        register_arrays(pixels.copy(), labels.tolist(), list("abcd"), folder=tmp_path) == name
    )  # written once
    assert path.stat().st_mtime_ns == written and len(list(tmp_path.glob("*.npz"))) == 1
    assert register_arrays(pixels, labels[::-1].copy(), list("abcd"), folder=tmp_path) != name
    assert register_arrays(pixels, labels, list("abce"), folder=tmp_path) != name
    assert (
        register_arrays(pixels, labels, list("abcd"), folder=tmp_path, is_test=np.arange(40) < 5)
        != name
    )


def test_constant_images_do_not_divide_by_zero(tmp_path, file_data):
    pixels = np.full((8, 1, 4, 4), 7, dtype=np.uint8)
    name = register_arrays(pixels, np.arange(8) % 2, ["a", "b"], folder=tmp_path)
    inputs = load_dataset(name).inputs
    assert torch.isfinite(inputs).all() and (inputs == 0).all()


def test_unregistered_file_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_FILE_DATA", str(tmp_path))
    with pytest.raises(
        DatasetNotFoundError,
        match=r"register it with "
        r"pdlib\.userdata\.register_arrays",
    ):
        load_dataset(FILE_PREFIX + "0123456789abcdef")


@pytest.mark.parametrize(
    "pixels, labels, is_test, match",
    [
        (np.zeros((4, 6, 6), np.uint8), np.zeros(4, int), None, "pixels must be"),
        (np.zeros((4, 1, 6, 5), np.uint8), np.zeros(4, int), None, "pixels must be"),
        (np.zeros((4, 1, 6, 6), np.uint8), np.zeros(3, int), None, "one label per image"),
        (
            np.zeros((4, 1, 6, 6), np.uint8),
            np.zeros(4, int),
            np.zeros(3, bool),
            "is_test|one label per image",
        ),
        (
            np.zeros((4, 1, 6, 6), np.uint8),
            np.array([0, 1, 2, 1]),
            None,
            "labels",
        ),  # 2 classes named
        (np.zeros((4, 1, 6, 6), np.uint8), np.array([0, -1, 1, 1]), None, "labels"),
    ],
)
def test_register_arrays_bad_inputs(tmp_path, file_data, pixels, labels, is_test, match):
    with pytest.raises(ValueError, match=match):
        register_arrays(pixels, labels, ["a", "b"], folder=tmp_path, is_test=is_test)
    assert not list(tmp_path.glob("*.npz"))  # nothing written
