"""Section 4: corner groups, Wilson intervals, held-out probe counts and the honest k-NN fix."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdlib import difficulty
from pdlib.ensembles import held_out_probe_counts, run_ensemble
from pdlib.runs import RunConfig
from pdlib.training import TrainConfig

TEMPLATE = RunConfig(dataset="digits", arch="mlp", width=16, n_pool=300, n_test=60, holdout_fraction=0.1,
                     train=TrainConfig(epochs=4, batch_size=32, lr=0.05), seed=20)


def test_corner_groups_by_brute_force(rng):
    val, train = rng.uniform(0, 8, 200), rng.uniform(0, 8, 200)
    val[:3] = np.nan  # never held out: never chosen
    groups = difficulty.corner_groups(val, train, 8, n=10)
    assert list(groups) == list(difficulty.CORNERS)
    for name, (cx, cy) in difficulty.CORNERS.items():
        distance = np.hypot(val / 8 - cx, train / 8 - cy)
        distance[np.isnan(distance)] = np.inf
        np.testing.assert_array_equal(groups[name], np.argsort(distance, kind="stable")[:10])
    only_some = difficulty.corner_groups(val, train, 8, n=500, candidates=np.arange(200) % 2 == 0)
    assert all(len(g) == 98 and (g % 2 == 0).all() for g in only_some.values())  # 100 even points, 0 and 2 NaN
    with pytest.raises(ValueError, match="depth_val and depth_train"):
        difficulty.corner_groups(val, train[:5], 8)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(1, 60))
def test_wilson_interval_contains_the_proportion(successes, trials):
    successes = min(successes, trials)
    low, high = difficulty.wilson_interval(successes, trials)
    assert 0 <= low <= successes / trials <= high <= 1
    wider = difficulty.wilson_interval(successes, trials, confidence=0.99)
    assert wider[0] <= low + 1e-12 and wider[1] >= high - 1e-12


def test_wilson_interval_known_value_and_edges():
    # Wilson (1927) / Newcombe (1998) example: 81 of 263 -> (0.2553, 0.3662).
    low, high = difficulty.wilson_interval(81, 263)
    assert math.isclose(low, 0.2553, abs_tol=5e-4) and math.isclose(high, 0.3662, abs_tol=5e-4)
    assert all(math.isnan(v) for v in difficulty.wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        difficulty.wilson_interval(5, 3)


def test_split_points_is_a_seeded_partition():
    first, second = difficulty.split_points(np.arange(11) * 3, seed=4)
    assert len(first) == 6 and len(second) == 5
    assert sorted(np.concatenate([first, second]).tolist()) == (np.arange(11) * 3).tolist()
    again = difficulty.split_points(np.arange(11) * 3, seed=4)
    np.testing.assert_array_equal(first, again[0])


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    import os

    os.environ["PDLIB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return run_ensemble(TEMPLATE, 4, threads=1, progress=False)


def test_held_out_probe_counts_against_a_loop(ensemble):
    runs = list(ensemble.artifacts())
    pool = ~runs[0]["is_test"]
    labels = runs[0]["labels"][pool]
    other = (labels + 1) % 10
    other[:5] = -1  # unknown targets are never hits
    counts = held_out_probe_counts(ensemble, {"truth": labels, "other": other})
    n_probes, n = counts["n_probes"], len(labels)
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
                    answer = run["probe_predictions"][p, i] if run["depth"][i] >= t else run["network_predictions"][i]
                    rule[p, t, i] += answer == labels[i]
    np.testing.assert_array_equal(counts["n_held_out"], n_held_out)
    for name in votes:
        np.testing.assert_array_equal(counts["votes"][name], votes[name])
        np.testing.assert_array_equal(counts["hits"][name], hits[name])
    np.testing.assert_array_equal(counts["network_hits"]["truth"], network_hits)
    np.testing.assert_array_equal(counts["rule_hits"], rule)
    # t = n_probes never switches; t = 0 always uses the probe.
    np.testing.assert_array_equal(rule[:, n_probes], np.broadcast_to(network_hits, (n_probes, n)))
    np.testing.assert_array_equal(rule[:, 0], hits["truth"])
    assert counts["k"] == 30
    with pytest.raises(ValueError, match="shape"):
        held_out_probe_counts(ensemble, {"truth": labels[:10]})


def test_group_curves_and_the_honest_choice(ensemble):
    runs = list(ensemble.artifacts())
    labels = runs[0]["labels"][~runs[0]["is_test"]]
    counts = held_out_probe_counts(ensemble, {"ground truth": labels})
    points = np.flatnonzero(counts["n_held_out"] > 0)
    curves = difficulty.group_probe_curves(counts, points, "ground truth")
    assert curves["appearances"] == counts["n_held_out"].sum()
    assert ((0 <= curves["confidence"]) & (curves["confidence"] <= 1)).all()
    # A predicted class holds at least k / n_classes of the votes: accuracy <= n_classes * confidence.
    assert (curves["accuracy"] <= np.minimum(1, curves["confidence"] * counts["n_probes"] * 10)).all()
    fix = difficulty.choose_probe_layer(counts, points, target="ground truth", seed=1)
    select, evaluate = difficulty.split_points(points, 1)
    expected_layer = int(np.argmax(counts["hits"]["ground truth"][:, select].sum(1)))
    assert fix["layer"] == expected_layer
    assert fix["probe"]["trials"] == counts["n_held_out"][evaluate].sum()
    assert fix["probe"]["hits"] == counts["hits"]["ground truth"][expected_layer, evaluate].sum()
    assert fix["probe"]["ci_low"] <= fix["probe"]["accuracy"] <= fix["probe"]["ci_high"]
    rule = difficulty.pd_switch_rule(counts, points, target="ground truth", seed=1)
    accuracy = counts["rule_hits"][:, :, select].sum(2)
    assert accuracy[rule["layer"], rule["threshold"]] == accuracy.max()
    assert rule["network"]["trials"] == rule["rule"]["trials"]
