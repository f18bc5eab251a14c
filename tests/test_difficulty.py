"""pdlib.difficulty on synthetic per-point arrays and held-out probe counts, against brute force and
loops.

The counts dicts have the structure documented in :func:`pdlib.ensembles.held_out_probe_counts`;
here they are accumulated by a loop over simulated held-out appearances (the real function is tested
against the same loop on a trained ensemble in test_ensembles.py).
"""

import numpy as np
import pytest

from pdlib import difficulty, make_model
from pdlib.difficulty import CORNERS
from pdlib.ensembles import ProbeCounts
from pdlib.metrics import wilson_interval

# --- corner groups -----------------------------------------------------------------------------


def brute_force_corner(val, train, max_depth, corner, n, eligible):
    cx, cy = CORNERS[corner]
    scored = [
        (np.hypot(val[i] / max_depth - cx, train[i] / max_depth - cy), i)
        for i in range(len(val))
        if eligible[i] and np.isfinite(val[i]) and np.isfinite(train[i])
    ]
    return [i for _, i in sorted(scored)[:n]]  # by distance, then by index


@pytest.mark.parametrize("n", [1, 10, 60])
def test_corner_groups_by_brute_force(rng, n):
    val, train = rng.uniform(0, 8, 200), rng.uniform(0, 8, 200)
    val[:3] = np.nan  # never held out: never chosen
    train[5] = np.nan  # never trained on: never chosen
    groups = difficulty.corner_groups(val, train, 8, n=n)
    assert list(groups) == list(CORNERS)
    for name in CORNERS:
        assert groups[name].dtype == np.int64
        assert groups[name].tolist() == brute_force_corner(
            val, train, 8, name, n, np.ones(200, bool)
        )
        assert not set(groups[name].tolist()) & {0, 1, 2, 5}


def test_corner_groups_break_ties_by_index():
    # integer PDs: many points at exactly the same place in the plane
    val = np.array([2, 0, 0, 4, 0, 0, 4, 2], dtype=float)
    train = np.array([2, 4, 0, 0, 0, 4, 0, 2], dtype=float)
    groups = difficulty.corner_groups(val, train, 4, n=3)
    assert groups["easy"].tolist() == [
        2,
        4,
        0,
    ]  # two at the corner (by index), then the nearer of 0 and 7
    assert groups["looks like a different class"].tolist() == [1, 5, 0]
    assert groups["ambiguous unless the label is given"].tolist() == [3, 6, 0]
    assert groups["ambiguous"].tolist() == [
        0,
        7,
        1,
    ]  # distance ties: (2, 2) before (0, 4) and (4, 0)
    reordered = difficulty.corner_groups(val[::-1].copy(), train[::-1].copy(), 4, n=3)
    assert reordered["easy"].tolist() == [
        3,
        5,
        0,
    ]  # the same points, named by their new indices in index order


def test_corner_groups_with_candidates(rng):
    val, train = rng.uniform(0, 8, 200), rng.uniform(0, 8, 200)
    val[:3] = np.nan
    even = np.arange(200) % 2 == 0
    only_some = difficulty.corner_groups(val, train, 8, n=500, candidates=even)
    assert all(
        len(g) == 98 and (g % 2 == 0).all() for g in only_some.values()
    )  # 100 even points, 0 and 2 NaN
    for name in CORNERS:
        assert only_some[name].tolist() == brute_force_corner(val, train, 8, name, 500, even)
    assert all(
        len(g) == 0
        for g in difficulty.corner_groups(val, train, 8, candidates=np.zeros(200, bool)).values()
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: difficulty.corner_groups(np.zeros(5), np.zeros(4), 8),
            ValueError,
            "depth_val and depth_train",
        ),
        (
            lambda: difficulty.corner_groups(np.zeros((2, 2)), np.zeros((2, 2)), 8),
            ValueError,
            "1-D",
        ),
        (
            lambda: difficulty.corner_groups(np.zeros(5), np.zeros(5), 0),
            ValueError,
            "max_depth must be >= 1",
        ),
        (
            lambda: difficulty.corner_groups(np.zeros(5), np.zeros(5), 8.0),
            TypeError,
            "max_depth must be an integer",
        ),
        (
            lambda: difficulty.corner_groups(np.zeros(5), np.zeros(5), 8, n=0),
            ValueError,
            "n must be >= 1",
        ),
        (
            lambda: difficulty.corner_groups(
                np.zeros(5), np.zeros(5), 8, candidates=np.ones(4, bool)
            ),
            ValueError,
            "candidates has shape",
        ),
    ],
)
def test_corner_groups_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_corner_table(rng):
    n, max_depth = 300, 10
    stats = {
        "depth_val": rng.uniform(0, 10, n),
        "depth_train": rng.uniform(0, 10, n),
        "consensus_consistency": rng.uniform(0.3, 1, n),
        "consistency": rng.uniform(0, 1, n),
        "labels": rng.integers(0, 3, n),
    }
    stats["consensus"] = np.where(rng.random(n) < 0.2, (stats["labels"] + 1) % 3, stats["labels"])
    stats["consensus_consistency"][[0, 1]] = np.nan
    groups = difficulty.corner_groups(stats["depth_val"], stats["depth_train"], max_depth, n=20)
    groups["easy"] = np.r_[groups["easy"][:18], 0, 1]  # two points without C*
    table = difficulty.corner_table(stats, groups, max_depth)
    assert list(table.index) == list(CORNERS) and table["points"].tolist() == [20] * 4
    assert table["consensus ≠ label"].dtype.kind == "i"
    for name, index in groups.items():
        row, (cx, cy) = table.loc[name], CORNERS[name]
        cstar = [
            stats["consensus_consistency"][i]
            for i in index
            if np.isfinite(stats["consensus_consistency"][i])
        ]
        assert (
            row["C*"] == pytest.approx(np.mean(cstar))
            and row["C* low"] <= row["C*"] <= row["C* high"]
        )
        assert row["distance to corner"] == pytest.approx(
            np.mean(
                [
                    np.hypot(stats["depth_val"][i] / 10 - cx, stats["depth_train"][i] / 10 - cy)
                    for i in index
                ]
            )
        )
        assert row["mean PD_val"] == pytest.approx(stats["depth_val"][index].mean())
        assert row["consensus ≠ label"] == sum(
            stats["consensus"][i] != stats["labels"][i] for i in index
        )
        assert row["Ĉ"] == pytest.approx(stats["consistency"][index].mean())
    assert table.loc["easy", "mean PD_val"] < 3 and table.loc["ambiguous", "mean PD_train"] > 7


# --- held-out probe counts: a loop over simulated appearances ----------------------------------


def simulated_counts(seed, *, n=60, n_probes=5, n_classes=3, k=7, r=8, good_layer=2):
    """Counts as held_out_probe_counts would accumulate them; probe ``good_layer`` is right most
    often."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    counts = ProbeCounts.zeros({"truth": labels}, n, n_probes, k)
    right_rate = np.full(n_probes, 0.4)
    right_rate[good_layer] = 0.9
    for _ in range(r):
        for i in np.flatnonzero(rng.random(n) < 0.4):
            y = labels[i]
            counts.n_held_out[i] += 1
            network = y if rng.random() < 0.3 else (y + 1) % n_classes
            depth = rng.integers(0, n_probes)
            for p in range(n_probes):
                correct = rng.random() < right_rate[p]
                predicted = y if correct else (y + 1) % n_classes
                votes_for_y = (
                    rng.integers(k // 2 + 1, k + 1) if correct else rng.integers(0, k // 2)
                )
                counts.votes["truth"][p, i] += votes_for_y
                counts.hits["truth"][p, i] += predicted == y
                for t in range(n_probes + 1):
                    counts.rule_hits[p, t, i] += (predicted if depth >= t else network) == y
            counts.network_hits["truth"][i] += network == y
    return counts


def test_group_probe_curves():
    counts = simulated_counts(0)
    points = np.arange(0, 60, 3)
    curves = difficulty.group_probe_curves(counts, points, "truth")
    appearances = sum(counts.n_held_out[i] for i in points)
    assert curves["appearances"] == appearances
    for p in range(counts.n_probes):
        assert curves["accuracy"][p] == pytest.approx(
            sum(counts.hits["truth"][p, i] for i in points) / appearances
        )
        assert curves["confidence"][p] == pytest.approx(
            sum(counts.votes["truth"][p, i] for i in points) / (counts.k * appearances)
        )
    assert curves["network_accuracy"] == pytest.approx(
        counts.network_hits["truth"][points].sum() / appearances
    )
    assert np.argmax(curves["accuracy"]) == 2
    unseen = np.flatnonzero(counts.n_held_out == 0)
    empty = difficulty.group_probe_curves(counts, unseen[:1] if len(unseen) else [], "truth")
    assert (
        empty["appearances"] == 0
        and np.isnan(empty["accuracy"]).all()
        and np.isnan(empty["network_accuracy"])
    )


def test_middle_probe_is_the_papers_layer_4():
    assert [difficulty.middle_probe(n) for n in (11, 15, 9)] == [5, 7, 4]
    for arch, name in (("resnet18", "block4"), ("vgg16", "conv7"), ("mlp", "hidden4")):
        names = make_model(arch, 10, 1, 8, width=2).probe_points
        assert names[difficulty.middle_probe(len(names))] == name


def test_probe_fix_sums_the_held_out_appearances():
    counts = simulated_counts(1)
    points = np.arange(20)
    fix = difficulty.probe_fix(counts, points, target="truth", layer=2)
    trials = counts.n_held_out[:20].sum()
    assert fix["layer"] == 2 and fix["points"] == 20
    for report, hits in (
        (fix["network"], counts.network_hits["truth"][:20].sum()),
        (fix["probe"], counts.hits["truth"][2, :20].sum()),
    ):
        assert report["hits"] == hits and report["trials"] == trials
        assert report["accuracy"] == pytest.approx(hits / trials)
        assert (report["ci_low"], report["ci_high"]) == pytest.approx(wilson_interval(hits, trials))
    assert (
        fix["probe"]["ci_low"] > fix["network"]["ci_high"]
    )  # layer 2 is far better in the simulation


def test_paired_comparison_matches_a_loop_over_points():
    counts = simulated_counts(1)
    points = np.arange(30)
    for against in (None, 0):
        out = difficulty.paired_comparison(counts, points, target="truth", layer=2, against=against)
        trials = counts.n_held_out[points]
        hits = counts.hits["truth"][2, points]
        base = (
            counts.network_hits["truth"][points]
            if against is None
            else counts.hits["truth"][against, points]
        )
        n, h, b = (sum(int(x) for x in values) for values in (trials, hits, base))
        assert out["trials"] == n and out["accuracy"] == pytest.approx(h / n)
        assert out["baseline_accuracy"] == pytest.approx(b / n)
        assert out["gain"][0] == pytest.approx((h - b) / n)
        assert out["error_reduction"][0] == pytest.approx(1 - (n - h) / (n - b))
        for value, low, high in (out["gain"], out["error_reduction"]):
            assert low <= value <= high
    # the interval resamples points: a single point gives no spread
    seen = np.flatnonzero(counts.n_held_out > 0)[:1]
    one = difficulty.paired_comparison(counts, seen, target="truth", layer=2)
    assert one["gain"][1] == pytest.approx(one["gain"][2])


def test_random_group_and_corner_evidence():
    group = difficulty.random_group(np.arange(100, 200), 10, seed=0)
    assert len(set(group.tolist())) == 10 and group.min() >= 100 and (np.diff(group) > 0).all()
    np.testing.assert_array_equal(group, difficulty.random_group(np.arange(100, 200), 10, seed=0))


def test_split_points_is_a_seeded_partition():
    first, second = difficulty.split_points(np.arange(11) * 3, seed=4)
    assert len(first) == 6 and len(second) == 5
    assert sorted(np.concatenate([first, second]).tolist()) == (np.arange(11) * 3).tolist()
    again = difficulty.split_points(np.arange(11) * 3, seed=4)
    np.testing.assert_array_equal(first, again[0])
    assert not np.array_equal(first, difficulty.split_points(np.arange(11) * 3, seed=5)[0])


@pytest.mark.parametrize("seed", range(3))
def test_choose_probe_layer_matches_a_loop(seed):
    counts = simulated_counts(seed + 10)
    points = np.flatnonzero(counts.n_held_out > 0)
    out = difficulty.choose_probe_layer(counts, points, target="truth", seed=seed)
    select, evaluate = difficulty.split_points(points, seed)
    trials = sum(counts.n_held_out[i] for i in select)
    accuracy = [
        sum(counts.hits["truth"][p, i] for i in select) / trials for p in range(counts.n_probes)
    ]
    layer = accuracy.index(max(accuracy))  # ties to the earlier probe
    assert out["layer"] == layer == 2
    np.testing.assert_allclose(out["selection_accuracy"], accuracy)
    assert (out["selection"], out["evaluation"]) == (len(select), len(evaluate))
    assert out["probe"]["hits"] == sum(
        counts.hits["truth"][layer, i] for i in evaluate
    )  # scored on the rest
    assert out["network"]["trials"] == out["probe"]["trials"] == counts.n_held_out[evaluate].sum()


def test_choose_probe_layer_ties_go_to_the_earlier_probe():
    counts = simulated_counts(2)
    counts.hits["truth"][:] = counts.hits["truth"][0]  # every probe equally good
    points = np.flatnonzero(counts.n_held_out > 0)
    assert difficulty.choose_probe_layer(counts, points, target="truth")["layer"] == 0
    with pytest.raises(ValueError, match="both halves"):
        difficulty.choose_probe_layer(
            counts, np.flatnonzero(counts.n_held_out == 0)[:4], target="truth"
        )


@pytest.mark.parametrize("seed", range(3))
def test_pd_switch_rule_matches_a_loop(seed):
    counts = simulated_counts(seed + 20)
    points = np.flatnonzero(counts.n_held_out > 0)
    out = difficulty.pd_switch_rule(counts, points, target="truth", seed=seed)
    select, evaluate = difficulty.split_points(points, seed)
    n_probes, trials = counts.n_probes, counts.n_held_out[select].sum()
    scores = {
        (p, t): counts.rule_hits[p, t, select].sum() / trials
        for p in range(n_probes)
        for t in range(n_probes + 1)
    }
    best = max(scores.values())
    chosen = sorted(pt for pt, s in scores.items() if np.isclose(s, best, rtol=0, atol=1e-12))
    never = [pt for pt in chosen if pt[1] == n_probes]
    layer, threshold = never[0] if never else chosen[0]
    assert (out["layer"], out["threshold"]) == (layer, threshold)
    assert out["rule"]["hits"] == counts.rule_hits[layer, threshold, evaluate].sum()
    assert out["network"]["hits"] == counts.network_hits["truth"][evaluate].sum()
    assert out["rule"]["trials"] == out["network"]["trials"]


def test_pd_switch_rule_never_switches_without_evidence():
    counts = simulated_counts(3)
    # every rule scores like the network: nothing to gain from switching
    counts.rule_hits[:] = counts.network_hits["truth"][None, None, :]
    points = np.flatnonzero(counts.n_held_out > 0)
    out = difficulty.pd_switch_rule(counts, points, target="truth")
    assert out["threshold"] == counts.n_probes and out["layer"] == 0
    assert out["rule"]["hits"] == out["network"]["hits"]
    with pytest.raises(ValueError, match="no held-out appearances"):
        difficulty.pd_switch_rule(
            counts, np.flatnonzero(counts.n_held_out == 0)[:4], target="truth"
        )


def test_fix_and_rule_tables():
    counts = simulated_counts(4)
    points = np.flatnonzero(counts.n_held_out > 0)
    names = ["input", "h1", "h2", "h3", "softmax"]
    decoupled = difficulty.probe_fix(counts, points, target="truth", layer=2)
    splits = [
        difficulty.choose_probe_layer(counts, points, target="truth", seed=s) for s in range(2)
    ]
    table = difficulty.fix_table(decoupled, splits, names)
    assert len(table) == 3 and "h2 (fixed in advance)" == table.loc[0, "probe"]
    assert table["probe accuracy"].str.contains(r"^\d+\.\d % \(\d+/\d+; ").all()
    rule = difficulty.pd_switch_rule(counts, points, target="truth")
    row = difficulty.rule_table(rule, names, 5).iloc[0]
    assert row["rule"].startswith(f"use {names[rule['layer']]} when ")
    never = difficulty.rule_table({**rule, "threshold": 5}, names, 5).iloc[0]
    assert never["rule"].endswith("when never")


def test_corner_display_puts_the_interval_beside_c_star():
    import pandas as pd

    corners = pd.DataFrame(
        {"points": [3], "C*": [0.72], "C* low": [0.671], "C* high": [0.764]}, index=["ambiguous"]
    )
    shown = difficulty.corner_display(corners)
    assert list(shown.columns) == ["points", "C*"] and shown.loc["ambiguous", "C*"] == (
        "0.72 [0.67, 0.76]"
    )
    assert "C* low" in corners  # the verdict's table is left as it is


def test_group_size_table_scores_each_size_like_paired_comparison():
    rng = np.random.default_rng(5)
    n = 60
    first = {
        "n_probes": 5,
        "depth_val": rng.integers(0, 5, n).astype(float),
        "depth_train": rng.integers(0, 5, n).astype(float),
    }
    later = simulated_counts(2, n=n, good_layer=difficulty.middle_probe(5))
    table = difficulty.group_size_table(first, later, sizes=(5, 20), target="truth")
    assert table["points"].tolist() == [5, 20, 100]  # the paper's group last
    group = difficulty.corner_groups(first["depth_val"], first["depth_train"], 4, n=20)
    expected = difficulty.paired_comparison(
        later, group["ambiguous unless the label is given"], target="truth", layer=2
    )
    row = table.iloc[1]
    assert row["network (%)"] == pytest.approx(100 * expected["baseline_accuracy"])
    assert row["middle probe (%)"] == pytest.approx(100 * expected["accuracy"])
    assert row["share of the plane (%)"] == pytest.approx(100 * 20 / n)
    assert row["errors removed (%)"].startswith(f"{100 * expected['error_reduction'][0]:.0f} [")
    assert table.iloc[-1]["share of the plane (%)"] == pytest.approx(0.2)
