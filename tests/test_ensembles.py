"""The ensemble engine: seeds and splits, executors agree bit for bit, kill -9 and resume."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from pdlib.ensembles import ensemble_configs, run_ensemble
from pdlib.runs import RUNS_KIND, RunConfig
from pdlib.training import TrainConfig

TEMPLATE = RunConfig(dataset="digits", arch="mlp", width=16, n_pool=400, n_test=100, holdout_fraction=0.1,
                     train=TrainConfig(epochs=4, batch_size=32, lr=0.05, n_checkpoints=4), seed=10)


def arrays_of(ensemble):
    return [dict(artifact.arrays) for artifact in ensemble.artifacts()]


def assert_identical(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_configs_seeds_and_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    configs = ensemble_configs(TEMPLATE, 3)
    assert [c.seed for c in configs] == [10, 11, 12]
    ensemble = run_ensemble(TEMPLATE, 3, threads=1, progress=False)
    artifacts = arrays_of(ensemble)
    masks = [a["in_train"][~a["is_test"]] for a in artifacts]
    assert all(m.sum() == 360 for m in masks)  # exactly 90% of the 400 pool points
    assert not np.array_equal(masks[0], masks[1])  # each model has its own split
    for artifact in artifacts:
        assert not artifact["in_train"][artifact["is_test"]].any()
        assert artifact["checkpoint_predictions"].shape == (5, 500)
        assert artifact["votes"].dtype == np.uint8 and artifact["votes"].shape[:2] == (9, 500)
        assert artifact["logits"].shape == (500, 10)
    with pytest.raises(ValueError, match="holdout_fraction"):
        ensemble_configs(RunConfig(dataset="digits", arch="mlp", width=8), 2)
    with pytest.raises(ValueError, match="executor must be one of"):
        run_ensemble(TEMPLATE, 2, executor="slurm")


@pytest.mark.slow
def test_process_pool_is_bit_identical_to_local(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "local"))
    local = arrays_of(run_ensemble(TEMPLATE, 3, threads=1, progress=False))
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "pool"))
    pooled = arrays_of(run_ensemble(TEMPLATE, 3, executor="process", workers=2, threads=1, progress=False))
    assert_identical(local, pooled)


@pytest.mark.slow
def test_ray_is_bit_identical_to_local(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "local"))
    local = arrays_of(run_ensemble(TEMPLATE, 2, threads=1, progress=False))
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "ray"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PDLIB_CACHE": str(tmp_path / "ray"), "PDLIB_QUIET": "1"}})
    try:
        remote = arrays_of(run_ensemble(TEMPLATE, 2, executor="ray", threads=1, progress=False))
    finally:
        ray.shutdown()
    assert_identical(local, remote)


@pytest.mark.slow
def test_kill_minus_nine_then_resume(tmp_path, monkeypatch):
    """A real subprocess killed with SIGKILL mid-ensemble loses no finished model."""
    cache = tmp_path / "cache"
    env = {**os.environ, "PDLIB_CACHE": str(cache)}
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from tests.test_ensembles import TEMPLATE
        from pdlib.ensembles import run_ensemble
        run_ensemble(TEMPLATE, 6, threads=1, progress=False)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen([sys.executable, "-c", script, root], env=env, cwd=root)
    folder = cache / RUNS_KIND
    deadline = time.time() + 240
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 2:
        time.sleep(0.02)
    time.sleep(0.3)  # land inside a later model's training
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    finished = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.json")}
    assert 2 <= len(finished) < 6, "the kill must land mid-ensemble"

    monkeypatch.setenv("PDLIB_CACHE", str(cache))
    resumed = run_ensemble(TEMPLATE, 6, threads=1, progress=False)
    assert not resumed.missing()
    # finished models were neither recomputed nor rewritten
    assert all(folder.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in finished.items())
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "fresh"))
    fresh = arrays_of(run_ensemble(TEMPLATE, 6, threads=1, progress=False))
    monkeypatch.setenv("PDLIB_CACHE", str(cache))
    assert_identical(arrays_of(resumed), fresh)


def test_streaming_statistics_match_batch_metrics(tmp_path, monkeypatch):
    from pdlib.consistency import (consensus_class, consensus_consistency, consistency_score, iteration_learned,
                                   rescale_iteration, split_means)
    from pdlib.ensembles import ensemble_statistics

    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    ensemble = run_ensemble(TEMPLATE, 4, threads=1, progress=False)
    stats = ensemble_statistics(ensemble)
    runs = arrays_of(ensemble)
    pool = ~runs[0]["is_test"]
    predictions = np.stack([r["network_predictions"][pool] for r in runs]).astype(np.int64)
    held_out = np.stack([~r["in_train"][pool] for r in runs])
    labels = runs[0]["labels"][pool]
    consensus = consensus_class(predictions, held_out, labels, 10)
    np.testing.assert_array_equal(stats["consensus"], consensus)
    np.testing.assert_allclose(stats["consistency"], consistency_score(predictions, held_out, labels))
    np.testing.assert_allclose(stats["consensus_consistency"], consensus_consistency(predictions, held_out, consensus))
    depth = np.stack([r["depth"][pool] for r in runs])
    for got, want in zip((stats["depth_val"], stats["depth_train"]), split_means(depth, held_out)):
        np.testing.assert_allclose(got, want)
    iterations = np.stack([rescale_iteration(iteration_learned(r["checkpoint_predictions"][:, pool])) for r in runs])
    np.testing.assert_allclose(stats["iteration_val"], split_means(iterations, held_out)[0])
    assert stats["val_depth_pairs"].shape == (held_out.sum(),)
    np.testing.assert_array_equal(stats["n_held_out"], held_out.sum(axis=0))
