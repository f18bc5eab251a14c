"""Weights on demand, re-probing variants, label-noise curves, margins and the claims records."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from pdlib import claims, experiments, sensitivity
from pdlib.cache import load_artifact
from pdlib.profiles import get_profile
from pdlib.runs import WEIGHTS_KIND, RunConfig, run_data, run_model, trained_model
from pdlib.training import TrainConfig

# Trained to fit: a barely trained net has dead units, hence many exactly tied distances,
# where two exact k-NN searches may keep different members of a tie.
SMALL = RunConfig(dataset="digits", arch="mlp", width=32, n_pool=300, n_test=60, holdout_fraction=0.1,
                  train=TrainConfig(epochs=20, batch_size=32, lr=0.05), seed=3)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDLIB_CACHE", str(tmp_path))
    return tmp_path


def test_trained_model_retrains_once_and_reproduces_the_run():
    run = run_model(SMALL, progress=False)
    model = trained_model(SMALL, progress=False)
    assert not model.training
    weights = load_artifact(WEIGHTS_KIND, SMALL)
    assert weights is not None and weights.meta["train_accuracy"] == run.meta["train_accuracy"]
    data = run_data(SMALL)
    inputs = torch.cat([data.pool_inputs, data.test_inputs])
    with torch.no_grad():
        np.testing.assert_array_equal(model(inputs).argmax(1).numpy(), run["network_predictions"])
        np.testing.assert_allclose(model(inputs).numpy(), run["logits"], rtol=1e-5, atol=1e-5)
    again = trained_model(SMALL, progress=False)  # loaded, not retrained
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_neighbour_variants_invariants():
    run = run_model(SMALL, progress=False)
    assert run.meta["train_accuracy"] > 0.99
    pool = ~run["is_test"]
    labels = run["labels"][pool]
    out = sensitivity.neighbour_variants(SMALL, labels, ks=(1, 30, 60), progress=False)
    variants = out["variants"]
    assert list(variants)[0] == sensitivity.DEFAULT_VARIANT
    default_predictions, default_depth = variants[sensitivity.DEFAULT_VARIANT]
    np.testing.assert_array_equal(default_depth, run["depth"])  # the cached run, reproduced exactly
    np.testing.assert_array_equal(default_predictions, run["probe_predictions"])
    # Consensus equal to the labels everywhere: the same probes.
    np.testing.assert_array_equal(variants["consensus labels"][1], default_depth)
    # Counting the point itself only changes training points.
    held_out = ~out["in_train"]
    np.testing.assert_array_equal(variants["point counts itself"][1][held_out], default_depth[held_out])
    assert {"k = 1", "k = 60"} <= set(variants)
    with pytest.raises(ValueError, match="must include"):
        sensitivity.neighbour_variants(SMALL, labels, ks=(1, 5))


def test_point_counting_itself_matches_a_direct_search():
    from pdlib.capture import capture_embeddings
    from pdlib.knn import knn_neighbours, vote

    out = sensitivity.neighbour_variants(SMALL, run_model(SMALL)["labels"][:300], ks=(30,), progress=False)
    model = trained_model(SMALL)
    data = run_data(SMALL)
    run = run_model(SMALL)
    train = np.flatnonzero(run["in_train"])
    embedding = capture_embeddings(model, data.pool_inputs[torch.as_tensor(train)], ["hidden3"]).embeddings["hidden3"]
    # Including the point: search the training set for itself, without leaving it out.
    lists = knn_neighbours(embedding, embedding, k=30)
    expected, _ = vote(lists, run["fit_labels"][train], 10)
    probe = model.probe_points.index("hidden3")
    agreement = np.mean(out["variants"]["point counts itself"][0][probe, train] == expected)
    assert agreement > 0.99  # equal except where a duplicate image ties with the point itself


def test_reduced_embeddings_on_a_small_conv_net():
    config = RunConfig(dataset="digits", arch="resnet18", width=2, n_pool=100, n_test=20,
                       train=TrainConfig(epochs=2, batch_size=50, lr=0.05), seed=0)
    out = sensitivity.reduced_embedding_variants(config, min_features=64, projection_dim=16, progress=False)
    assert out["reduced"] and "input" not in out["reduced"] and "softmax" not in out["reduced"]
    np.testing.assert_array_equal(out["variants"]["exact"][1], run_model(config)["depth"])
    names = out["probe_names"]
    for variant, features in out["features"].items():
        for name, exact, reduced in zip(names, out["features"]["exact"], features):
            if name not in out["reduced"] or variant == "exact":
                assert reduced == exact
            elif variant.startswith("average"):
                assert reduced < exact
            else:
                assert reduced == 16


def test_rank_correlation_drops_missing_pairs():
    assert sensitivity.rank_correlation([1, 2, np.nan, 4], [10, 20, 5, 40]) == pytest.approx(1.0)
    assert np.isnan(sensitivity.rank_correlation([1, 1, 1], [1, 2, 3]))


def test_label_noise_curves_follow_their_definitions():
    profile = get_profile("smoke", n_pool=300, n_test=60, n_checkpoints=4, mlp_width=16)
    (run,) = experiments.noisy_label_runs(profile, "digits", "mlp", 1, noise=0.4, epochs=5)
    assert run["corrupted"].mean() == pytest.approx(0.4 * 300 / 360, abs=0.01)
    assert (run["fit_labels"][run["corrupted"]] != run["labels"][run["corrupted"]]).all()
    training = experiments.noise_learning_curves(run)
    inference = experiments.noise_inference_curves(run)
    clean, new, original, test = experiments.NOISE_SETS
    corrupted = run["corrupted"]
    history = run["checkpoint_predictions"]
    np.testing.assert_allclose(training[new], (history[:, corrupted] == run["fit_labels"][corrupted]).mean(1))
    np.testing.assert_allclose(training[original], (history[:, corrupted] == run["labels"][corrupted]).mean(1))
    # A corrupted label differs from the original, so no prediction scores on both.
    assert (training[new] + training[original] <= 1 + 1e-12).all()
    assert (inference[new] + inference[original] <= 1 + 1e-12).all()
    np.testing.assert_allclose(inference[test], (run["probe_predictions"][:, run["is_test"]]
                                                 == run["labels"][run["is_test"]]).mean(1))
    assert training[clean][-1] == pytest.approx(
        (run["network_predictions"][~run["is_test"] & ~corrupted] == run["labels"][~run["is_test"] & ~corrupted]).mean())


def test_margin_statistics_and_zero_hinge_configs():
    profile = get_profile("smoke", n_pool=200, n_test=40, mlp_width=16, n_checkpoints=3)
    configs = experiments.full_pool_configs(profile, "digits", "mlp", 2)
    margins = experiments.margin_statistics(configs)
    assert margins["depth"].shape == margins["output_margin"].shape == margins["input_margin"].shape == (2, 40)
    assert (margins["output_margin"] >= 0).all() and (margins["input_margin"] >= 0).all()
    hinge = experiments.zero_hinge_configs(profile, "digits", "mlp", n_train=50, steps=20, lr=0.001)
    assert list(hinge) == ["untrained", "0-Hinge", "cross-entropy"]
    assert hinge["untrained"].train.epochs == 0 and hinge["0-Hinge"].train.loss == "zero_hinge"
    assert hinge["0-Hinge"].train.batch_size == 50 and hinge["0-Hinge"].train.stop_at_zero_loss
    assert hinge["cross-entropy"].train.epochs == 2 * profile.mlp_train.epochs
    assert len({c.seed for c in hinge.values()}) == 1 and all(c.n_pool == 50 for c in hinge.values())


def test_claims_round_trip_and_table_has_no_empty_cell(cache):
    entry = claims.record("margins", profile="smoke", measured="r = -0.5", verdict="partly reproduced",
                          reason="weaker", setting="digits; mlp", values={"r": np.float64(-0.5)})
    assert json.loads((cache / "claims" / "smoke" / "margins.json").read_text()) == {**entry, "values": {"r": -0.5}}
    table = claims.claims_table("smoke")
    assert len(table) == len(claims.CLAIMS)
    assert table.map(lambda v: bool(str(v).strip())).all().all()
    row = table.set_index("claim").loc[[c.statement for c in claims.CLAIMS if c.key == "margins"][0]]
    assert row["verdict"] == "partly reproduced" and row["ours"] == "r = -0.5"
    missing = table[table["verdict"] == "not tested"]
    assert len(missing) == len(claims.CLAIMS) - 1 and missing["why"].str.contains("--only").all()
    with pytest.raises(ValueError, match="unknown claim"):
        claims.record("flat_earth", profile="smoke", measured="", verdict="reproduced", reason="", setting="")
    with pytest.raises(ValueError, match="verdict"):
        claims.record("margins", profile="smoke", measured="", verdict="maybe", reason="", setting="")


def test_profiles_keep_dataclass_semantics():
    profile = get_profile("smoke")
    assert dataclasses.replace(profile, n_pool=10).n_pool == 10
