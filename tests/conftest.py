"""Fixtures and factories shared by the test modules (``from conftest import ...`` for the
factories: pytest puts tests/ on the path)."""

import os
import tempfile

import numpy as np
import pytest
import torch

os.environ.setdefault("PDLIB_QUIET", "1")
# One fresh run cache per test session, inherited by notebook kernels and book builds:
# nbval recomputes every smoke run instead of reading results cached by an earlier build.
os.environ.setdefault("PDLIB_CACHE", tempfile.mkdtemp(prefix="pdlib-test-cache-"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: one thread is fastest, and far faster than two on a loaded machine
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module that trains them)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def digits_run_config(**changes):
    """A small, fast :class:`~pdlib.runs.RunConfig` on the digits set (an MLP of width 16 on 200
    pool and 40 test images, a 90:10 split, 3 epochs, k = 5); ``changes`` replace its fields, and
    ``train`` may be a dict of :class:`~pdlib.training.TrainConfig` changes."""
    import dataclasses

    from pdlib.runs import RunConfig
    from pdlib.training import TrainConfig

    train = TrainConfig(epochs=3, batch_size=40, lr=0.05, n_checkpoints=3)
    if isinstance(changes.get("train"), dict):
        changes["train"] = dataclasses.replace(train, **changes["train"])
    fields = dict(
        dataset="digits",
        arch="mlp",
        width=16,
        n_pool=200,
        n_test=40,
        holdout_fraction=0.1,
        train=train,
        seed=3,
        k=5,
    )
    return RunConfig(**{**fields, **changes})


def gaussian_blobs(n_classes: int, side: int, n: int, *, seed: int, noise: float = 1.0):
    """``(inputs (n, 1, side, side), labels (n,))``: one Gaussian blob of images per class around a
    random centre (scale 2), noise ``noise``; seeded through one torch generator."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, 1, side, side, generator=generator) * 2
    labels = torch.randint(0, n_classes, (n,), generator=generator)
    return centres[labels] + noise * torch.randn(n, 1, side, side, generator=generator), labels
