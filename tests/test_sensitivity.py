"""pdlib.sensitivity: re-probing a cached network (from its stored weights) under the open
choices."""

import numpy as np
import pytest
import torch
from conftest import digits_run_config

from pdlib import sensitivity
from pdlib.knn import knn_neighbours, vote
from pdlib.probes import capture_embeddings
from pdlib.runs import load_model, run_data, run_model
from pdlib.training import TrainConfig

# Trained to fit: a barely trained net has dead units, hence many exactly tied distances,
# where two exact k-NN searches may keep different members of a tie.
SMALL = digits_run_config(
    width=32, n_pool=300, n_test=60, train=TrainConfig(epochs=20, batch_size=32, lr=0.05), k=30
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def variants(one_thread):
    """The cached run (session cache) and its neighbour variants."""
    run = run_model(SMALL, keep_weights=True, progress=False)
    assert run.meta["train_accuracy"] > 0.99
    consensus = run["labels"][~run["is_test"]].copy()
    return run, sensitivity.neighbour_variants(SMALL, consensus, ks=(1, 30, 60))


def test_neighbour_variants_invariants(variants):
    run, out = variants
    names = list(out["variants"])
    assert names[0] == sensitivity.DEFAULT_VARIANT
    assert set(names) == {
        sensitivity.DEFAULT_VARIANT,
        "k = 1",
        "k = 60",
        "point counts itself",
        "consensus labels",
    }
    default_predictions, default_depth = out["variants"][sensitivity.DEFAULT_VARIANT]
    np.testing.assert_array_equal(default_depth, run["depth"])  # the cached run, reproduced exactly
    np.testing.assert_array_equal(default_predictions, run["probe_predictions"])
    np.testing.assert_array_equal(out["cached_depth"], run["depth"])
    # consensus equal to the labels everywhere: the same probes
    np.testing.assert_array_equal(out["variants"]["consensus labels"][1], default_depth)
    # counting the point itself only changes training points
    held_out = ~out["in_train"]
    np.testing.assert_array_equal(
        out["variants"]["point counts itself"][1][held_out], default_depth[held_out]
    )
    with pytest.raises(ValueError, match="must include the run's k = 30"):
        sensitivity.neighbour_variants(SMALL, run["labels"][:300], ks=(1, 5))


def test_point_counting_itself_matches_a_direct_search(variants):
    run, out = variants
    model, data = load_model(SMALL), run_data(SMALL)
    train = np.flatnonzero(run["in_train"])
    embedding = capture_embeddings(
        model, data.pool_inputs[torch.as_tensor(train)], ["hidden3"], progress=False
    ).embeddings["hidden3"]
    # including the point: search the training set for itself, without leaving it out
    expected, _ = vote(knn_neighbours(embedding, embedding, k=30), run["fit_labels"][train], 10)
    probe = model.probe_points.index("hidden3")
    agreement = np.mean(out["variants"]["point counts itself"][0][probe, train] == expected)
    assert agreement > 0.99  # equal except where a duplicate image ties with the point itself


def test_variants_table(variants):
    run, out = variants
    pool = ~run["is_test"]
    stats = {"labels": run["labels"][pool], "consistency": np.linspace(0, 1, pool.sum())}
    table = sensitivity.variants_table([out, out], stats)
    assert list(table.index) == list(out["variants"])
    row = table.loc[sensitivity.DEFAULT_VARIANT]
    assert row["rank corr. with default (train)"] == pytest.approx(1.0)
    depth = out["variants"][sensitivity.DEFAULT_VARIANT][1][:300]
    assert row["mean PD (train)"] == pytest.approx(depth[out["in_train"][:300]].mean())


def test_reduced_embeddings_on_a_small_conv_net():
    config = digits_run_config(
        arch="resnet18",
        width=2,
        n_pool=100,
        n_test=20,
        holdout_fraction=0.0,
        train=TrainConfig(epochs=2, batch_size=50, lr=0.05),
        seed=0,
    )
    out = sensitivity.reduced_embedding_variants(config, min_features=64, projection_dim=16)
    assert out["reduced"] and "input" not in out["reduced"] and "softmax" not in out["reduced"]
    np.testing.assert_array_equal(out["variants"]["exact"][1], run_model(config)["depth"])
    names = out["probe_names"]
    for variant, features in out["features"].items():
        for name, exact, reduced in zip(names, out["features"]["exact"], features, strict=True):
            if name not in out["reduced"] or variant == "exact":
                assert reduced == exact
            elif variant.startswith("average"):
                assert reduced < exact
            else:
                assert reduced == 16
    per_probe, summary = sensitivity.reduced_tables(out)
    assert (
        len(per_probe) == 2 * len(out["reduced"])
        and summary.loc["exact", "PD agreement with exact (%)"] == 100
    )
