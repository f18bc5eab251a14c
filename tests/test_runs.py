"""pdlib.runs: one trained-and-probed network per config, its artifact, stored weights and label
noise."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import digits_run_config

from pdlib.cache import _jsonable, load_artifact
from pdlib.metrics import prediction_depth
from pdlib.runs import RUNS_KIND, RunConfig, load_model, run_data, run_model
from pdlib.training import TrainConfig
from pdlib.userdata import register_arrays

SMALL = digits_run_config()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    return tmp_path


def test_artifact_contents():
    run = run_model(SMALL, progress=False)
    n = 240
    assert run["labels"].shape == run["is_test"].shape == run["in_train"].shape == (n,)
    assert run["is_test"].sum() == 40 and not run["is_test"][:200].any()  # pool first, then test
    assert run["in_train"].sum() == 180 and not run["in_train"][run["is_test"]].any()
    assert run["probe_predictions"].shape == (9, n) and run["probe_predictions"].dtype == np.int16
    assert run["votes"].shape == (9, n, 10) and (run["votes"].sum(axis=2) == 5).all()
    assert run["logits"].shape == (n, 10) and run["logits"].dtype == np.float32
    np.testing.assert_array_equal(run["network_predictions"], run["logits"].argmax(1))
    np.testing.assert_array_equal(
        run["depth"], prediction_depth(run["probe_predictions"], run["network_predictions"])
    )
    assert (
        np.isnan(run["aum"][~run["in_train"]]).all()
        and np.isfinite(run["aum"][run["in_train"]]).all()
    )
    assert run["checkpoint_predictions"].shape == (4, n) and run["loss_history"].shape == (3,)
    np.testing.assert_array_equal(run["checkpoint_predictions"][-1], run["network_predictions"])
    np.testing.assert_array_equal(run["fit_labels"], run["labels"])
    assert not run["corrupted"].any()
    data = run_data(SMALL)
    np.testing.assert_array_equal(run["dataset_index"], np.r_[data.pool_index, data.test_index])
    np.testing.assert_array_equal(run["labels"], np.r_[data.pool_labels, data.test_labels])
    meta = run.meta
    assert len(meta["probe_names"]) == 9 and meta["class_names"] == [str(d) for d in range(10)]
    assert meta["test_accuracy"] == pytest.approx(
        np.mean(run["network_predictions"][200:] == run["labels"][200:])
    )
    assert {"train", "probe", "capture", "knn"} <= set(meta["seconds"]) and meta["config"][
        "seed"
    ] == 3
    # cached: the second call reads the artifact
    assert run_model(SMALL).path == run.path and load_artifact(RUNS_KIND, SMALL) is not None


def test_stored_weights_reproduce_the_run():
    run = run_model(SMALL, keep_weights=True, progress=False)
    model = load_model(SMALL)
    assert not model.training and next(model.parameters()).device.type == "cpu"
    data = run_data(SMALL)
    with torch.no_grad():
        logits = model(torch.cat([data.pool_inputs, data.test_inputs])).numpy()
    np.testing.assert_array_equal(logits.argmax(1), run["network_predictions"])
    np.testing.assert_allclose(logits, run["logits"], rtol=1e-5, atol=1e-5)


def test_load_model_needs_stored_weights():
    with pytest.raises(
        FileNotFoundError,
        match=r"run not computed yet: call run_model\(config, "
        r"keep_weights=True\)",
    ):
        load_model(SMALL)
    without = run_model(SMALL, progress=False)
    with pytest.raises(
        FileNotFoundError,
        match=r"cached without its weights: recompute it with "
        r"run_model\(config, "
        r"keep_weights=True\)",
    ):
        load_model(SMALL)
    # asking for the weights recomputes the run once, so that arrays and weights come from one
    # network
    with_weights = run_model(SMALL, keep_weights=True)
    assert with_weights.weights_path is not None
    for key in without.arrays:
        np.testing.assert_array_equal(with_weights[key], without[key], err_msg=key)  # deterministic
    again = run_model(SMALL, keep_weights=True)
    assert (
        again.meta["provenance"]["created"] == with_weights.meta["provenance"]["created"]
    )  # not recomputed
    assert load_model(SMALL) is not None


def test_noise_pair_flips_only_between_the_two_classes():
    config = digits_run_config(
        width=8,
        n_pool=300,
        n_test=20,
        holdout_fraction=0.0,
        label_noise=0.5,
        noise_pair=(0, 2),
        train=TrainConfig(epochs=0),
        k=3,
    )
    run = run_model(config, progress=False)
    corrupted, labels, fit = run["corrupted"], run["labels"], run["fit_labels"]
    assert set(labels[corrupted].tolist()) == {0, 2}
    np.testing.assert_array_equal(fit[corrupted], 2 - labels[corrupted])  # 0 <-> 2
    np.testing.assert_array_equal(fit[~corrupted], labels[~corrupted])
    pool = ~run["is_test"]
    for source in (0, 2):
        assert (corrupted & (labels == source)).sum() == round(
            0.5 * (pool & (labels == source)).sum()
        )
    assert not corrupted[run["is_test"]].any()
    uniform = run_model(RunConfig(**{**config.__dict__, "noise_pair": ()}), progress=False)
    assert (
        uniform["corrupted"].sum() == 150
        and len(set(uniform["labels"][uniform["corrupted"]].tolist())) > 2
    )


def test_noise_targets_flip_each_class_to_its_target_and_stay_out_of_the_hash():
    from pdlib.cache import config_hash

    base = digits_run_config(
        width=8, n_pool=300, n_test=20, label_noise=0.2, train=TrainConfig(epochs=0), k=3
    )
    targets = tuple((c + 1) % 10 for c in range(10))
    config = dataclasses.replace(base, noise_targets=targets)
    run = run_model(config, progress=False)
    corrupted, labels, fit = run["corrupted"], run["labels"], run["fit_labels"]
    assert corrupted.sum() > 0 and not corrupted[run["is_test"]].any()
    np.testing.assert_array_equal(fit[corrupted], (labels[corrupted] + 1) % 10)
    # at its default the field is left out of the key, so runs cached before it keep theirs
    assert "noise_targets" not in json.dumps(_jsonable(base))
    assert config_hash(config) != config_hash(base)


def test_untrained_run_with_a_small_head():
    config = digits_run_config(
        width=8,
        n_pool=60,
        n_test=10,
        holdout_fraction=0.0,
        head_init_scale=1e-4,
        train=TrainConfig(epochs=0),
        k=3,
        seed=0,
    )
    run = run_model(config, progress=False)
    assert np.abs(run["logits"]).max() < 1e-2 and run["loss_history"].shape == (0,)
    assert np.isnan(run["aum"]).all()


def test_class_subsets_and_registered_arrays(tmp_path, monkeypatch):
    subset = run_model(
        RunConfig(
            dataset="digits",
            arch="mlp",
            width=8,
            n_pool=60,
            n_test=10,
            classes=(3, 5),
            train=TrainConfig(epochs=1, batch_size=30),
            k=3,
        ),
        progress=False,
    )
    assert set(subset["labels"].tolist()) == {0, 1} and subset["logits"].shape[1] == 2
    assert subset.meta["class_names"] == ["3", "5"]
    monkeypatch.delenv("PDLIB_FILE_DATA", raising=False)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (50, 1, 4, 4), dtype=np.uint8)
    name = register_arrays(
        pixels,
        np.arange(50) % 3,
        ["a", "b", "c"],
        folder=tmp_path / "files",
        is_test=np.arange(50) >= 40,
    )
    run = run_model(
        RunConfig(
            dataset=name, arch="mlp", width=8, train=TrainConfig(epochs=1, batch_size=20), k=3
        ),
        progress=False,
    )
    assert run["is_test"].sum() == 10 and run.meta["class_names"] == ["a", "b", "c"]


def test_use_cache_false_recomputes():
    first = run_model(SMALL, progress=False)
    second = run_model(SMALL, use_cache=False, progress=False)
    assert second.meta["provenance"]["created"] >= first.meta["provenance"]["created"]
    assert second.meta["seconds_total"] != first.meta["seconds_total"]
    np.testing.assert_array_equal(second["depth"], first["depth"])
