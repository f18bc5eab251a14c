"""Cache: config hashing, atomic writes, provenance, load-or-compute."""

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest

from pdlib.cache import config_hash, load_artifact, load_or_compute
from pdlib.training import TrainConfig


@dataclass(frozen=True)
class Config:
    name: str
    size: int
    train: TrainConfig = TrainConfig()


def test_hash_is_stable_and_sensitive():
    assert config_hash(Config("a", 1)) == config_hash(Config("a", 1))
    assert config_hash(Config("a", 1)) != config_hash(Config("a", 2))
    assert config_hash(Config("a", 1)) != config_hash(Config("a", 1, TrainConfig(epochs=2)))
    assert len(config_hash(Config("a", 1))) == 16


def test_load_or_compute_computes_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(5), "y": np.eye(2, dtype=np.float32)}, {"seconds": {"train": 1.5}}

    first = load_or_compute("runs", Config("a", 1), compute, root=tmp_path)
    second = load_or_compute("runs", Config("a", 1), compute, root=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(second["x"], np.arange(5))
    assert second["y"].dtype == np.float32
    meta = second.meta
    assert meta["config"]["size"] == 1 and meta["config"]["train"]["epochs"] == TrainConfig().epochs
    assert {"git_sha", "versions", "device", "created"} <= set(meta["provenance"])
    assert meta["seconds"] == {"train": 1.5} and meta["seconds_total"] >= 0
    load_or_compute("runs", Config("a", 1), compute, root=tmp_path, use_cache=False)
    assert len(calls) == 2


def test_npz_without_metadata_is_not_trusted(tmp_path):
    load_or_compute("runs", Config("a", 1), lambda: ({"x": np.zeros(3)}, {}), root=tmp_path)
    (meta,) = (tmp_path / "runs").glob("*.json")
    meta.unlink()
    assert load_artifact("runs", Config("a", 1), root=tmp_path) is None


@pytest.mark.parametrize("kill_at", ["compute", "arrays", "metadata"])
def test_killed_writer_leaves_no_artifact(tmp_path, kill_at):
    """SIGKILL while computing, while writing the arrays, or between arrays and metadata."""
    script = textwrap.dedent(f"""
        import os, signal
        from dataclasses import dataclass
        import numpy as np
        import pdlib.cache as cache

        @dataclass(frozen=True)
        class Config:
            name: str

        kill_at = {kill_at!r}
        original = cache._atomic_write
        def dying_write(path, write):
            if kill_at == "arrays":
                return original(path, lambda tmp: (write(tmp), os.kill(os.getpid(), signal.SIGKILL)))
            if kill_at == "metadata" and path.suffix == ".json":
                os.kill(os.getpid(), signal.SIGKILL)
            return original(path, write)
        cache._atomic_write = dying_write

        def compute():
            if kill_at == "compute":
                os.kill(os.getpid(), signal.SIGKILL)
            return {{"x": np.arange(10**6)}}, {{}}

        cache.load_or_compute("runs", Config("killed"), compute, root={str(tmp_path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr

    @dataclass(frozen=True)
    class Config:  # same name and fields as in the subprocess, so the same hash
        name: str

    assert load_artifact("runs", Config("killed"), root=tmp_path) is None
    calls = []
    artifact = load_or_compute("runs", Config("killed"), lambda: (calls.append(1), ({"x": np.arange(3)}, {}))[1],
                               root=tmp_path)
    assert calls == [1] and artifact["x"].tolist() == [0, 1, 2]  # the re-run recomputes and completes


def test_cache_root_follows_environment(tmp_path, monkeypatch):
    from pdlib.cache import cache_root

    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
