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
