"""pdlib.ensembles: seeds and splits, statistics against the batch metrics, held-out probe counts
against a loop over models and points, stored weights, kill -9 and resume, and Ray agreeing with
the local executor."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import digits_run_config

from pdlib import difficulty
from pdlib.ensembles import (
    Ensemble,
    ensemble_configs,
    ensemble_statistics,
    held_out_probe_counts,
    run_ensemble,
)
from pdlib.metrics import (
    consensus_class,
    consensus_consistency,
    consistency_score,
    iteration_learned,
    rescale_iteration,
    split_means,
)
from pdlib.runs import RUNS_KIND, RunConfig
from pdlib.training import TrainConfig

TEMPLATE = digits_run_config(
    n_pool=300,
    n_test=60,
    train=TrainConfig(epochs=4, batch_size=32, lr=0.05, n_checkpoints=4),
    seed=10,
    k=30,
)
# Faster models for the kill-and-resume test (still about 0.1 s each, far longer than the 10 ms
# poll).
KILLED = digits_run_config(
    width=8,
    n_pool=150,
    n_test=30,
    train={"epochs": 2, "batch_size": 50, "n_checkpoints": 2},
    seed=40,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ensemble(one_thread):
    """Four models in the session's cache (conftest's $PDLIB_CACHE)."""
    return run_ensemble(TEMPLATE, 4, keep_weights=1, progress=False)


def arrays_of(ensemble):
    return [dict(artifact.arrays) for artifact in ensemble.artifacts()]


def assert_identical(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --- seeds, splits, slicing ----------------------------------------------------------------------


def test_configs_seeds_and_splits(ensemble):
    assert [c.seed for c in ensemble_configs(TEMPLATE, 3)] == [10, 11, 12]
    assert [c.seed for c in ensemble.configs] == [10, 11, 12, 13] and len(ensemble) == 4
    artifacts = arrays_of(ensemble)
    masks = [a["in_train"][~a["is_test"]] for a in artifacts]
    assert all(m.sum() == 270 for m in masks)  # exactly 90% of the 300 pool points
    assert not np.array_equal(masks[0], masks[1])  # each model has its own split
    for artifact in artifacts:
        assert not artifact["in_train"][artifact["is_test"]].any()
        assert artifact["checkpoint_predictions"].shape == (5, 360)
        assert artifact["votes"].dtype == np.uint8 and artifact["votes"].shape == (9, 360, 10)
        assert artifact["logits"].shape == (360, 10)
        np.testing.assert_array_equal(artifact["labels"], artifacts[0]["labels"])  # the same data


def test_slices_missing_and_weights(ensemble):
    assert ensemble[:2].configs == ensemble.configs[:2] and isinstance(ensemble[1:], Ensemble)
    assert ensemble.missing() == [] and ensemble.missing(with_weights=1) == []
    assert ensemble.missing(with_weights=2) == [
        ensemble.configs[1]
    ]  # only the first kept its weights
    first, second = list(ensemble[:2].artifacts())
    assert first.weights_path is not None and second.weights_path is None
    # a larger ensemble reuses the cached models and only computes the new one
    bigger = Ensemble(tuple(ensemble_configs(TEMPLATE, 5)))
    assert bigger.missing() == [bigger.configs[4]]


def test_uncomputed_models_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    ensemble = Ensemble(tuple(ensemble_configs(TEMPLATE, 2)))
    assert ensemble.missing() == list(ensemble.configs)
    with pytest.raises(FileNotFoundError, match="seed 10 is not computed; run run_ensemble first"):
        next(ensemble.artifacts())
    with pytest.raises(ValueError, match="no models"):
        ensemble_statistics(Ensemble(()))
    with pytest.raises(ValueError, match="no models"):
        held_out_probe_counts(Ensemble(()), {"truth": np.zeros(3, int)})


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: ensemble_configs(TEMPLATE, 0), ValueError, "n_models must be a positive integer"),
        (
            lambda: ensemble_configs(TEMPLATE, True),
            ValueError,
            "n_models must be a positive integer",
        ),
        (
            lambda: ensemble_configs(TEMPLATE, 2.0),
            ValueError,
            "n_models must be a positive integer",
        ),
        (
            lambda: ensemble_configs(RunConfig(dataset="digits", arch="mlp", width=8), 2),
            ValueError,
            "holdout_fraction",
        ),
        (
            lambda: run_ensemble(TEMPLATE, 2, executor="slurm"),
            ValueError,
            "executor must be one of",
        ),
        (
            lambda: run_ensemble(TEMPLATE, 2, executor="process"),
            ValueError,
            "executor must be one of",
        ),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- statistics against the batch metrics and loops ----------------------------------------------


def test_statistics_match_batch_metrics(ensemble):
    stats = ensemble_statistics(ensemble)
    runs = arrays_of(ensemble)
    pool = ~runs[0]["is_test"]
    predictions = np.stack([r["network_predictions"][pool] for r in runs]).astype(np.int64)
    held_out = np.stack([~r["in_train"][pool] for r in runs])
    labels = runs[0]["labels"][pool]
    consensus = consensus_class(predictions, held_out, labels, 10)
    np.testing.assert_array_equal(stats["consensus"], consensus)
    np.testing.assert_allclose(
        stats["consistency"], consistency_score(predictions, held_out, labels)
    )
    np.testing.assert_allclose(
        stats["consensus_consistency"], consensus_consistency(predictions, held_out, consensus)
    )
    depth = np.stack([r["depth"][pool] for r in runs])
    for got, want in zip(
        (stats["depth_val"], stats["depth_train"]), split_means(depth, held_out), strict=True
    ):
        np.testing.assert_allclose(got, want)
    iterations = np.stack(
        [rescale_iteration(iteration_learned(r["checkpoint_predictions"][:, pool])) for r in runs]
    )
    np.testing.assert_allclose(
        stats["iteration_val"], split_means(iterations, held_out)[0], rtol=1e-6
    )
    np.testing.assert_allclose(
        stats["iteration_train"], split_means(iterations, held_out)[1], rtol=1e-6
    )
    np.testing.assert_array_equal(stats["n_held_out"], held_out.sum(axis=0))
    np.testing.assert_array_equal(stats["n_trained"], 4 - held_out.sum(axis=0))
    np.testing.assert_array_equal(stats["held_out"], held_out)
    np.testing.assert_array_equal(stats["depth"], depth)
    assert stats["predictions"].shape == stats["iteration"].shape == (4, 300)
    assert (stats["n_models"], stats["n_probes"], stats["n_classes"]) == (4, 9, 10)
    assert stats["train_accuracy"].tolist() == [
        r.meta["train_accuracy"] for r in ensemble.artifacts()
    ]


def test_statistics_are_a_typed_read_only_mapping_computed_once(ensemble):
    import dataclasses

    from pdlib.ensembles import EnsembleStatistics

    stats = ensemble_statistics(ensemble)
    assert isinstance(stats, EnsembleStatistics)
    assert stats.depth_val is stats["depth_val"] and len(stats) == len(list(stats)) == 19
    assert set(stats) == {field.name for field in dataclasses.fields(EnsembleStatistics)}
    with pytest.raises(KeyError):
        stats["no such field"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.depth = None
    replaced = {**stats, "depth": stats.depth[:, ::-1]}
    assert isinstance(replaced, dict) and replaced["labels"] is stats.labels
    # the same models, unchanged on disk: the statistics are not recomputed
    assert ensemble_statistics(ensemble) is stats
    assert ensemble_statistics(ensemble, reference="fit_labels") is not stats


def test_statistics_against_the_labels_the_networks_were_trained_on(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    noisy = digits_run_config(
        width=8,
        n_pool=120,
        n_test=20,
        holdout_fraction=0.25,
        label_noise=0.3,
        train=TrainConfig(epochs=2, batch_size=40),
        seed=0,
    )
    ensemble = run_ensemble(noisy, 2, progress=False)
    truth, given = (
        ensemble_statistics(ensemble),
        ensemble_statistics(ensemble, reference="fit_labels"),
    )
    run = next(ensemble.artifacts())
    pool = ~run["is_test"]
    np.testing.assert_array_equal(truth["labels"], run["labels"][pool])
    np.testing.assert_array_equal(given["labels"], run["fit_labels"][pool])
    assert (truth["labels"] != given["labels"]).sum() == round(0.3 * 120)
    np.testing.assert_array_equal(
        truth["depth_val"], given["depth_val"], strict=True
    )  # PD ignores labels


def test_held_out_probe_counts_against_a_loop(ensemble):
    runs = list(ensemble.artifacts())
    pool = ~runs[0]["is_test"]
    labels = runs[0]["labels"][pool]
    other = (labels + 1) % 10
    other[:5] = -1  # unknown targets are never hits
    counts = held_out_probe_counts(ensemble, {"truth": labels, "other": other})
    n_probes, n = counts.n_probes, len(labels)
    votes = {name: np.zeros((n_probes, n), int) for name in ("truth", "other")}
    hits = {name: np.zeros((n_probes, n), int) for name in ("truth", "other")}
    network_hits, rule = np.zeros(n, int), np.zeros((n_probes, n_probes + 1, n), int)
    n_held_out = np.zeros(n, int)
    for run in runs:
        for i in range(n):
            if run["in_train"][i]:
                continue
            n_held_out[i] += 1
            for name, target in (("truth", labels), ("other", other)):
                if target[i] < 0:
                    continue
                for p in range(n_probes):
                    votes[name][p, i] += run["votes"][p, i, target[i]]
                    hits[name][p, i] += run["probe_predictions"][p, i] == target[i]
            network_hits[i] += run["network_predictions"][i] == labels[i]
            for p in range(n_probes):
                for t in range(n_probes + 1):
                    answer = (
                        run["probe_predictions"][p, i]
                        if run["depth"][i] >= t
                        else run["network_predictions"][i]
                    )
                    rule[p, t, i] += answer == labels[i]
    np.testing.assert_array_equal(counts.n_held_out, n_held_out)
    for name in votes:
        np.testing.assert_array_equal(counts.votes[name], votes[name])
        np.testing.assert_array_equal(counts.hits[name], hits[name])
    np.testing.assert_array_equal(counts.network_hits["truth"], network_hits)
    np.testing.assert_array_equal(counts.rule_hits, rule)
    # t = n_probes never switches; t = 0 always uses the probe.
    np.testing.assert_array_equal(rule[:, n_probes], np.broadcast_to(network_hits, (n_probes, n)))
    np.testing.assert_array_equal(rule[:, 0], hits["truth"])
    assert counts.k == 30 and counts.n_probes == 9
    with pytest.raises(ValueError, match="shape"):
        held_out_probe_counts(ensemble, {"truth": labels[:10]})


def test_group_curves_and_the_honest_choice_on_real_counts(ensemble):
    runs = list(ensemble.artifacts())
    labels = runs[0]["labels"][~runs[0]["is_test"]]
    counts = held_out_probe_counts(ensemble, {"ground truth": labels})
    points = np.flatnonzero(counts.n_held_out > 0)
    curves = difficulty.group_probe_curves(counts, points, "ground truth")
    assert curves["appearances"] == counts.n_held_out.sum()
    assert ((0 <= curves["confidence"]) & (curves["confidence"] <= 1)).all()
    # the predicted class holds at least k / n_classes of the votes: accuracy <= n_classes *
    # confidence
    assert (curves["accuracy"] <= np.minimum(1, 10 * curves["confidence"]) + 1e-12).all()
    fix = difficulty.choose_probe_layer(counts, points, target="ground truth", seed=1)
    assert fix["probe"]["ci_low"] <= fix["probe"]["accuracy"] <= fix["probe"]["ci_high"]
    rule = difficulty.pd_switch_rule(counts, points, target="ground truth", seed=1)
    assert rule["network"]["trials"] == rule["rule"]["trials"] == fix["network"]["trials"]


# --- holdout folds
# ---------------------------------------------------------------------------------


def test_holdout_folds_hold_every_point_out_equally_often(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    folds = digits_run_config(
        width=8,
        n_pool=100,
        n_test=10,
        holdout_fraction=0.25,
        holdout_folds=4,
        train=TrainConfig(epochs=1, batch_size=50),
        seed=0,
    )
    stats = ensemble_statistics(run_ensemble(folds, 8, progress=False))
    assert (stats["n_held_out"] == 2).all()  # r = 2 * 4 models: every point held out exactly twice
    held_out = stats["held_out"]
    np.testing.assert_array_equal(
        held_out[:4], held_out[4:]
    )  # seed s and s + 4 hold out the same fold
    assert (held_out[:4].sum(axis=0) == 1).all() and held_out[:4].sum(axis=1).tolist() == [25] * 4


# --- interrupted runs and executors
# ----------------------------------------------------------------


@pytest.mark.slow
def test_kill_minus_nine_then_resume(tmp_path, monkeypatch):
    """A real subprocess killed with SIGKILL mid-ensemble loses no finished model."""
    cache = tmp_path / "cache"
    env = {**os.environ, "PDLIB_CACHE": str(cache)}
    script = textwrap.dedent(f"""
        import torch
        torch.set_num_threads(1)
        from pdlib.ensembles import run_ensemble
        from pdlib.runs import RunConfig
        from pdlib.training import TrainConfig
        run_ensemble({KILLED!r}, 6, progress=False)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=root)
    folder = cache / RUNS_KIND
    deadline = time.time() + 240
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 2:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # somewhere in the third model (or later)
    assert process.wait() == -signal.SIGKILL
    finished = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.json")}
    assert 2 <= len(finished) < 6, "the kill must land mid-ensemble"
    assert len(list(folder.glob("*.npz"))) in (
        len(finished),
        len(finished) + 1,
    )  # at most one orphan array file

    monkeypatch.setenv("PDLIB_CACHE", str(cache))
    resumed = run_ensemble(KILLED, 6, progress=False)
    assert not resumed.missing()
    # finished models were neither recomputed nor rewritten
    assert all(
        folder.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in finished.items()
    )
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "fresh"))
    fresh = arrays_of(run_ensemble(KILLED, 6, progress=False))
    monkeypatch.setenv("PDLIB_CACHE", str(cache))
    assert_identical(arrays_of(resumed), fresh)


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.environ.get("CI") or os.environ.get("PDLIB_TEST_RAY")),
    reason="starting Ray takes about a minute on 2 cores; runs in CI or with PDLIB_TEST_RAY=1",
)
def test_ray_is_bit_identical_to_local(tmp_path, monkeypatch):
    ray = __import__("ray") if os.environ.get("CI") else pytest.importorskip("ray")
    small = digits_run_config(
        width=8,
        n_pool=120,
        n_test=20,
        train=TrainConfig(epochs=2, batch_size=40, n_checkpoints=2),
    )
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "local"))
    local = arrays_of(run_ensemble(small, 2, progress=False))
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path / "ray"))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PDLIB_CACHE": str(tmp_path / "ray"), "PDLIB_QUIET": "1"}},
    )
    try:
        remote = run_ensemble(
            small, 2, executor="ray", threads_per_task=1, keep_weights=1, progress=False
        )
    finally:
        ray.shutdown()
    assert_identical(local, arrays_of(remote))
    first = next(remote.artifacts())
    assert (
        first.meta["executor"] == "ray" and first.weights_path is not None
    )  # the driver wrote the weights
