"""pdlib.cache: config hashing, atomic writes (a writer killed at any point leaves no artifact),
provenance,
load-or-compute, stored weights and the note about old cache formats."""

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from pdlib.cache import (
    Artifact,
    cache_root,
    config_hash,
    is_cached,
    load_artifact,
    load_or_compute,
    save_artifact,
)
from pdlib.training import TrainConfig

CACHE_PY = Path(__file__).resolve().parents[1] / "pdlib" / "cache.py"


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

    load_or_compute("runs", Config("a", 1), compute, root=tmp_path)
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
    # pdlib.cache loaded on its own, without the package (and torch): the test is about the writes
    script = textwrap.dedent(f"""
        import importlib.util, os, signal, sys
        from dataclasses import dataclass
        import numpy as np
        spec = importlib.util.spec_from_file_location("standalone_cache", {str(CACHE_PY)!r})
        cache = sys.modules["standalone_cache"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cache)
        cache.provenance = lambda device=None: {{}}

        @dataclass(frozen=True)
        class Config:
            name: str

        kill_at = {kill_at!r}
        original = cache.write_atomically
        def dying_write(path, write):
            if kill_at == "arrays":
                die = lambda tmp: (write(tmp), os.kill(os.getpid(), signal.SIGKILL))
                return original(path, die)
            if kill_at == "metadata" and path.suffix == ".json":
                os.kill(os.getpid(), signal.SIGKILL)
            return original(path, write)
        cache.write_atomically = dying_write

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
    artifact = load_or_compute(
        "runs",
        Config("killed"),
        lambda: (calls.append(1), ({"x": np.arange(3)}, {}))[1],
        root=tmp_path,
    )
    assert calls == [1] and artifact["x"].tolist() == [
        0,
        1,
        2,
    ]  # the re-run recomputes and completes


def test_cache_root_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("PDLIB_CACHE")
    assert cache_root() == Path(__file__).resolve().parents[1] / "data" / "cache"


def test_hash_of_nested_values():
    @dataclass(frozen=True)
    class Nested:
        values: tuple = ()
        table: dict = None

    assert config_hash(Nested((1, 2))) == config_hash(
        Nested([1, 2])
    )  # tuples and lists are both JSON lists
    assert config_hash(Nested((np.int64(3),))) == config_hash(
        Nested((3,))
    )  # numpy scalars as Python numbers
    assert config_hash(Nested(table={"b": 1, "a": 2})) == config_hash(
        Nested(table={"a": 2, "b": 1})
    )
    assert config_hash(Nested((1, 2))) != config_hash(Nested((2, 1)))
    assert config_hash(Config("a", 1)) != config_hash(
        Nested()
    )  # the type's name is part of the key


def test_stored_weights(tmp_path):
    weights = {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2)}
    with_weights = load_or_compute(
        "runs", Config("w", 1), lambda: ({"x": np.ones(2)}, {}, weights), root=tmp_path
    )
    again = load_artifact("runs", Config("w", 1), root=tmp_path)
    assert again.meta["has_weights"] and again.weights_path == again.path.with_suffix(".pt")
    loaded = again.load_weights()
    assert loaded.keys() == weights.keys() and all(
        torch.equal(loaded[k], weights[k]) for k in weights
    )
    assert with_weights.weights_path is not None
    without = load_or_compute(
        "runs", Config("w", 2), lambda: ({"x": np.ones(2)}, {}), root=tmp_path
    )
    assert without.weights_path is None and not without.meta["has_weights"]
    with pytest.raises(FileNotFoundError, match="without its network's weights"):
        without.load_weights()
    assert Artifact({"x": np.ones(1)}, {}).weights_path is None  # in memory, never saved


def test_saved_metadata_and_arrays(tmp_path):
    artifact = save_artifact(
        "runs", Config("s", 3), {"x": [1, 2, 3]}, {"note": "hi"}, root=tmp_path
    )
    assert artifact["x"].tolist() == [1, 2, 3] and artifact.meta["note"] == "hi"
    meta = json.loads(artifact.path.with_suffix(".json").read_text())
    assert meta["kind"] == "runs" and meta["hash"] == config_hash(Config("s", 3))
    assert meta["config"]["__type__"] == "Config" and meta["config"]["name"] == "s"
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file left behind


def test_old_cache_formats_are_named_once(tmp_path):
    import pdlib.cache as cache

    (tmp_path / "runs-v1").mkdir()
    (tmp_path / "runs-v2").mkdir()
    with pytest.warns(UserWarning, match=r"older formats \(runs-v1, runs-v2\)"):
        load_artifact("runs-v3", Config("a", 1), root=tmp_path)
    assert tmp_path in cache._noted


def test_is_cached_reads_no_arrays(tmp_path, monkeypatch):
    """Complete artifacts only (metadata written last marks completion); weights on request; and
    without opening the arrays (np.load is never called)."""
    assert not is_cached("runs", Config("c", 1), tmp_path)
    save_artifact("runs", Config("c", 1), {"x": np.ones(3)}, {}, tmp_path)
    save_artifact(
        "runs", Config("c", 2), {"x": np.ones(3)}, {}, tmp_path, weights={"w": torch.ones(2)}
    )
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("is_cached loaded the arrays"))
    assert is_cached("runs", Config("c", 1), tmp_path)
    assert not is_cached("runs", Config("c", 1), tmp_path, with_weights=True)
    assert is_cached("runs", Config("c", 2), tmp_path, with_weights=True)
    meta = tmp_path / "runs" / f"{config_hash(Config('c', 1))}.json"
    meta.unlink()  # an npz without its metadata is an interrupted write
    assert not is_cached("runs", Config("c", 1), tmp_path)
