"""pdlib.analysis on fake cached runs with known answers, against loops over runs and points."""

import numpy as np
import pandas as pd
import pytest

from pdlib import analysis
from pdlib.analysis import NOISE_SETS
from pdlib.cache import Artifact
from pdlib.metrics import prediction_depth
from pdlib.verdicts import VERDICTS

N_PROBES, N_CLASSES = 6, 3


def fake_run(
    seed,
    *,
    n_pool=80,
    n_test=30,
    holdout=0.0,
    base=None,
    noise=0.3,
    n_probes=N_PROBES,
    n_classes=N_CLASSES,
    train_accuracy=1.0,
):
    """An Artifact shaped like pdlib.runs.run_model's: probes settle on the network's class at a
    random depth.

    ``base`` (n,) in [0, 1] makes runs agree on which points are deep.
    """
    rng = np.random.default_rng(seed)
    n = n_pool + n_test
    labels = np.random.default_rng(1234).integers(0, n_classes, n)  # the same data in every run
    network = np.where(rng.random(n) < 0.8, labels, rng.integers(0, n_classes, n))
    if base is None:
        base = np.random.default_rng(99).random(n)
    settle = np.clip(
        np.round((base + noise * rng.normal(size=n)) * (n_probes - 1)), 0, n_probes - 1
    ).astype(int)
    probes = rng.integers(0, n_classes, (n_probes, n))
    probes = np.where(np.arange(n_probes)[:, None] >= settle, network, probes)
    is_test = np.arange(n) >= n_pool
    in_train = ~is_test & (rng.random(n) >= holdout)
    logits = rng.normal(size=(n, n_classes)).astype(np.float32)
    logits[np.arange(n), network] += 4.0
    arrays = {
        "depth": prediction_depth(probes, network).astype(np.int8),
        "undecided": probes[-1] != network,
        "in_train": in_train,
        "is_test": is_test,
        "labels": labels,
        "fit_labels": labels.copy(),
        "network_predictions": network.astype(np.int16),
        "probe_predictions": probes.astype(np.int16),
        "logits": logits,
        "corrupted": np.zeros(n, bool),
        "checkpoint_steps": np.arange(0, 50, 10),
        "checkpoint_predictions": np.zeros((0, n), np.int16),
    }
    test_accuracy = float((network[is_test] == labels[is_test]).mean())
    meta = {
        "probe_names": ["input", *(f"hidden{i}" for i in range(1, n_probes - 1)), "softmax"],
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "seconds": {"train": 1.5 + seed},
        "config": {"seed": seed, "k": 30},
    }
    return Artifact(arrays, meta)


def fake_stats(rng, r=12, n=200, n_probes=N_PROBES, n_classes=N_CLASSES):
    """An ensemble_statistics-like dict: deeper points are less often right, iteration follows
    depth."""
    held_out = rng.random((r, n)) < 0.3
    labels = rng.integers(0, n_classes, n)
    depth = rng.integers(0, n_probes, (r, n))
    correct = rng.random((r, n)) < 1 - depth / n_probes
    predictions = np.where(correct, labels, (labels + 1) % n_classes)
    iteration = (depth + rng.normal(0, 1, (r, n))).clip(0) / n_probes
    iteration[rng.random((r, n)) < 0.05] = np.nan
    with np.errstate(invalid="ignore"):
        depth_val = np.where(held_out, depth, 0).sum(0) / held_out.sum(0)
        iteration_val = np.nansum(np.where(held_out, iteration, np.nan), 0) / held_out.sum(0)
    return {
        "held_out": held_out,
        "labels": labels,
        "depth": depth.astype(np.int8),
        "predictions": predictions,
        "iteration": iteration.astype(np.float32),
        "n_probes": n_probes,
        "n_models": r,
        "depth_val": depth_val,
        "iteration_val": iteration_val,
        "n_held_out": held_out.sum(0),
        "depth_train": np.where(~held_out, depth, 0).sum(0) / np.maximum((~held_out).sum(0), 1),
        "train_accuracy": np.full(r, 0.995),
        "consensus": labels.copy(),
    }


# --- Section 2 ---------------------------------------------------------------------------------


def test_runs_table():
    runs = {"mlp": [fake_run(0), fake_run(1)], "vgg16": [fake_run(2, n_probes=9)]}
    table = analysis.runs_table(runs)
    assert table.index.names == ["architecture", "seed"] and len(table) == 3
    assert table.index.get_level_values("seed").tolist() == [0, 1, 2]
    assert pd.api.types.is_integer_dtype(table.index.get_level_values("seed"))
    assert pd.api.types.is_integer_dtype(table["max PD"]) and table["max PD"].tolist() == [5, 5, 8]
    run = runs["mlp"][1]
    row = table.loc[("mlp", 1)]
    assert row["mean PD (train)"] == pytest.approx(run["depth"][run["in_train"]].mean())
    assert row["mean PD (test)"] == pytest.approx(run["depth"][~run["in_train"]].mean())
    assert row["undecided (%)"] == pytest.approx(
        100 * np.mean(run["probe_predictions"][-1] != run["network_predictions"])
    )
    assert row["train time (s)"] == 2.5 and row["test accuracy"] == run.meta["test_accuracy"]
    styled = analysis.show(table, "Runs")
    assert styled.caption == "Runs" and "2.500" in styled.to_html()


def loop_agreement(runs_by_arch, split):
    """Mean Pearson r over run pairs, written out."""
    names = list(runs_by_arch)
    depths = {
        a: [
            run["depth"][run["in_train"] if split == "train" else ~run["in_train"]].astype(float)
            for run in runs
        ]
        for a, runs in runs_by_arch.items()
    }
    matrix = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            values = [
                np.corrcoef(x, y)[0, 1]
                for s, x in enumerate(depths[a])
                for t, y in enumerate(depths[b])
                if i != j or s < t
            ]
            if values:
                matrix[i, j] = np.mean(values)
    return names, matrix, len(depths[names[0]][0])


def test_seed_agreement_matches_a_loop_over_runs():
    base = np.random.default_rng(5).random(110)
    runs = {
        "mlp": [fake_run(s, base=base, noise=0.5) for s in range(3)],
        "vgg16": [fake_run(s, base=base, noise=0.2) for s in range(10, 12)],
        "resnet18": [fake_run(20, base=base, noise=0.2)],
    }
    out = analysis.seed_agreement(runs)
    for split in ("train", "validation"):
        names, matrix, n = loop_agreement(runs, split)
        assert out["names"] == names and out[f"n_{split}"] == n
        np.testing.assert_allclose(out[split], matrix, rtol=1e-10)
    assert out["n_train"] == 80 and out["n_validation"] == 30
    assert np.isnan(out["train"][2, 2])  # one ResNet18: no seed pair
    # less noise between seeds, more agreement
    assert out["train"][1, 1] > out["train"][0, 0] > 0


def test_probe_accuracy_curves_and_mean_depth_per_point():
    runs = [fake_run(s) for s in range(3)]
    curves = analysis.probe_accuracy_curves(runs)
    for split, mask in (("train (leave-one-out)", "in_train"), ("test", None)):
        expected = np.mean(
            [
                [
                    np.mean(
                        run["probe_predictions"][p][run["in_train"] if mask else ~run["in_train"]]
                        == run["labels"][run["in_train"] if mask else ~run["in_train"]]
                    )
                    for p in range(N_PROBES)
                ]
                for run in runs
            ],
            axis=0,
        )
        np.testing.assert_allclose(curves[split], expected)
    per_point = analysis.mean_depth_per_point(runs)
    expected = np.mean([run["depth"][:80] for run in runs], axis=0) / (N_PROBES - 1)
    np.testing.assert_allclose(per_point, expected)
    stats = {"depth_train": np.array([0.0, 2.5, 5.0]), "n_probes": 6}
    np.testing.assert_allclose(analysis.mean_depth_per_point(stats), [0, 0.5, 1])


def test_mean_with_interval(rng):
    values = rng.normal(2.0, 1.0, 400)
    mean, low, high = analysis.mean_with_interval(values)
    assert mean == pytest.approx(values.mean()) and low < mean < high and high - low < 0.3


# --- Section 3.1 -------------------------------------------------------------------------------


def loop_consensus(votes, label):
    counts = [votes.count(c) for c in range(N_CLASSES)]
    tied = [c for c in range(N_CLASSES) if counts[c] == max(counts)]
    return label if label in tied else min(tied)


def test_cross_model_consensus_matches_a_loop():
    runs = [fake_run(s, noise=0.5) for s in range(6)]
    out = analysis.cross_model_consensus(runs)
    test = np.flatnonzero(runs[0]["is_test"])
    assert out["depth"].shape == (6, len(test)) and out["depth"].dtype == np.int64
    for held, run in enumerate(runs):  # every network takes its turn
        assert out["depth"][held].tolist() == run["depth"][test].tolist()
        voters = [other for m, other in enumerate(runs) if m != held]
        for j, i in enumerate(test):
            votes = [int(other["network_predictions"][i]) for other in voters]
            consensus = loop_consensus(votes, runs[0]["labels"][i])
            assert out["consensus"][held, j] == consensus
            assert out["consensus_consistency"][held, j] == pytest.approx(
                votes.count(consensus) / len(votes)
            )
    with pytest.raises(ValueError, match="at least 2 networks"):
        analysis.cross_model_consensus(runs[:1])


def test_mean_curve_slope_and_consensus_bounds(rng):
    depth = rng.integers(0, N_PROBES, (5, 400))
    cstar = 1 - 0.1 * depth + rng.normal(0, 0.01, depth.shape)
    curve = analysis.mean_curve_slope(depth, cstar, N_PROBES)
    for d in range(N_PROBES):
        assert curve["mean"][d] == pytest.approx(cstar[depth == d].mean())
        assert curve["count"][d] == (depth == d).sum()
    # C* falls by 0.1 per layer, so by 0.5 over PD / max
    assert curve["slope"] == pytest.approx(-0.5, abs=0.01)
    assert np.isnan(analysis.mean_curve_slope(np.zeros((2, 30), int), cstar[:2, :30], 6)["slope"])
    stats = fake_stats(rng)
    stats["consensus_consistency"] = 1 - stats["depth_val"] / N_PROBES
    found = analysis.consensus_bounds(stats, {"depth": depth, "consensus_consistency": cstar})
    mean_curve = found["mean_curve"]
    assert mean_curve["slope_low"] <= mean_curve["slope"] <= mean_curve["slope_high"] < -0.4
    assert found["median_appearances"] == np.median(stats["n_held_out"][stats["n_held_out"] > 0])
    assert found["envelope"]["slope"] < 0
    control = analysis.consensus_bounds(
        stats, {"depth": depth, "consensus_consistency": cstar}, permute_seed=0
    )
    assert abs(control["mean_curve"]["slope"]) < 0.1


def test_permute_points_moves_every_pd_quantity_together(rng):
    stats = fake_stats(rng)
    stats["undecided"] = rng.random(stats["depth"].shape) < 0.1
    permuted = analysis.permute_points(stats, seed=3)
    order = np.random.default_rng(3).permutation(len(stats["labels"]))
    for key in ("depth", "undecided"):
        np.testing.assert_array_equal(permuted[key], stats[key][:, order])
    for key in ("depth_val", "depth_train"):
        np.testing.assert_array_equal(permuted[key], stats[key][order])
    for key in ("labels", "predictions", "held_out"):  # the rest stays with its point
        assert permuted[key] is stats[key]


def test_decided_plane_leaves_undecided_appearances_out(rng):
    stats = fake_stats(rng)
    stats["undecided"] = rng.random(stats["depth"].shape) < 0.2
    plane = analysis.decided_plane(stats)
    for i in range(20):
        for key, split in (("depth_val", True), ("depth_train", False)):
            chosen = (stats["held_out"][:, i] == split) & ~stats["undecided"][:, i]
            expected = stats["depth"][chosen, i].mean() if chosen.any() else np.nan
            np.testing.assert_allclose(plane[key][i], expected)


def test_ensemble_table(rng):
    stats = fake_stats(rng)
    stats["held_out"][:, :3] = False  # never held out
    stats["held_out"][0, 3:] = True  # every other point held out at least once
    stats["n_held_out"] = stats["held_out"].sum(0)
    stats["consensus"][3:8] = (stats["labels"][3:8] + 1) % N_CLASSES
    stats["consensus"][:3] = -1
    table = analysis.ensemble_table(stats)
    values = dict(zip(table["quantity"], table["value"], strict=True))
    assert list(table.columns) == ["quantity", "value"] and table["value"].map(type).eq(str).all()
    assert values["networks"] == "12" and values["pool points"] == "200"
    assert values["points held out at least once"] == "197"
    held = stats["held_out"]
    correct = [
        stats["predictions"][m, i] == stats["labels"][i]
        for m in range(12)
        for i in range(200)
        if held[m, i]
    ]
    assert values["mean held-out accuracy (%)"] == f"{100 * np.mean(correct):.1f}"
    assert values["mean training accuracy (%)"] == "99.50"
    assert values["consensus ≠ label (%)"] == f"{100 * 5 / 197:.1f}"
    assert values["mean PD_val (layers)"] == f"{np.nanmean(stats['depth_val']):.2f}"
    assert values["mean times held out"] == f"{stats['held_out'][:, 3:].sum() / 197:.1f}"


def loop_accuracy_gain(stats):
    max_depth = stats["n_probes"] - 1
    pairs = [
        (int(stats["depth"][m, i]), stats["predictions"][m, i] == stats["labels"][i])
        for m, i in zip(*np.nonzero(stats["held_out"]), strict=True)
    ]
    low = [c for d, c in pairs if d <= max_depth // 3]
    high = [c for d, c in pairs if d >= 2 * max_depth // 3]
    accuracy = [
        np.mean([c for d, c in pairs if d == depth])
        if any(d == depth for d, _ in pairs)
        else np.nan
        for depth in range(stats["n_probes"])
    ]
    return np.mean(low), np.mean(high), len(low) / len(pairs), accuracy


def test_accuracy_gain_matches_a_loop(rng):
    stats = fake_stats(rng)
    out = analysis.accuracy_gain(stats)
    acc_low, acc_high, share_low, accuracy = loop_accuracy_gain(stats)
    np.testing.assert_allclose(out["accuracy"], accuracy)
    assert out["count"].sum() == stats["held_out"].sum()
    assert out["acc_low"] == pytest.approx(acc_low) and out["acc_high"] == pytest.approx(acc_high)
    assert out["share_low"] == pytest.approx(share_low) and out["gain"] == pytest.approx(
        acc_low - acc_high
    )
    assert (
        out["gain_low"] < out["gain"] < out["gain_high"] and out["gain_low"] > 0
    )  # deeper is clearly worse
    assert analysis.accuracy_gain(stats, seed=0)["gain_low"] == out["gain_low"]  # seeded


def test_bound_with_interval(rng):
    depth = rng.integers(0, 11, 3000)
    cstar = np.clip(1 - 0.05 * depth + rng.exponential(0.1, 3000), 0, 1)
    cstar[:10] = np.nan
    fit = analysis.bound_with_interval(depth, cstar, 10, n_boot=50)
    assert fit["slope_low"] <= fit["slope"] <= fit["slope_high"] and fit["slope"] == pytest.approx(
        -0.5, abs=0.1
    )


# --- Sections 3.2 and 3.3 ----------------------------------------------------------------------


def test_iteration_readings_match_a_loop(rng):
    stats = fake_stats(rng)
    out = analysis.iteration_readings(stats)
    assert list(out) == [
        "per appearance, validation",
        "per appearance, training",
        "per point, validation",
        "over PD bins, validation",
    ]
    held = stats["held_out"] & np.isfinite(stats["iteration"])
    bins = [
        (d, stats["iteration"][held & (stats["depth"] == d)].mean())
        for d in range(N_PROBES)
        if (held & (stats["depth"] == d)).sum() >= 20
    ]
    x, y = np.array(bins, dtype=float).T
    r, low, high, n = out["over PD bins, validation"]
    assert n == len(bins) and r == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-5)
    assert low <= r <= high
    for reading, held in (
        ("per appearance, validation", True),
        ("per appearance, training", False),
    ):
        pairs = [
            (stats["depth"][m, i], stats["iteration"][m, i])
            for m in range(12)
            for i in range(200)
            if stats["held_out"][m, i] == held and np.isfinite(stats["iteration"][m, i])
        ]
        x, y = np.array(pairs, dtype=float).T
        r = np.corrcoef(x, y)[0, 1]
        got_r, low, high, n = out[reading]
        assert n == len(pairs) and got_r == pytest.approx(r, abs=1e-6)
        assert low < got_r < high  # networks and points resampled (tests/test_intervals.py)
    keep = np.isfinite(stats["depth_val"]) & np.isfinite(stats["iteration_val"])
    r, _, _, n = out["per point, validation"]
    assert n == keep.sum() and r == pytest.approx(
        np.corrcoef(stats["depth_val"][keep], stats["iteration_val"][keep])[0, 1]
    )
    table = analysis.iteration_table({"cifar10": out}, {"cifar10": 0.70})
    assert (
        len(table) == 4
        and (table["paper"] == 0.70).all()
        and pd.api.types.is_integer_dtype(table["pairs"])
    )


def test_iteration_panels(rng):
    stats = fake_stats(rng)
    panels = analysis.iteration_panels({"fmnist": stats})
    mean, share, r = panels["validation-split appearances"]["fmnist"]
    held = stats["held_out"]
    for d in range(N_PROBES):
        chosen = stats["iteration"][held & (stats["depth"] == d)]
        assert mean[d] == pytest.approx(np.nanmean(chosen), rel=1e-5)
    assert share.sum() == pytest.approx(1.0) and r > 0.5


def test_margin_correlations_match_a_loop(rng):
    m, n = 4, 60
    depth = rng.integers(0, 9, (m, n))
    output = np.exp(-0.3 * depth + rng.normal(0, 0.3, (m, n)))
    input_margin = np.exp(-0.2 * depth + rng.normal(0, 0.3, (m, n)))
    output[1, 0] = 0.0  # a tie under one network: log 0, left out of that margin's r
    input_margin[2, 1] = np.inf  # no boundary in the linear approximation: left out too
    out = analysis.margin_correlations(
        {"depth": depth, "output_margin": output, "input_margin": input_margin}
    )
    mean_depth = depth.mean(axis=0)
    np.testing.assert_allclose(out["mean_depth"], mean_depth)
    for name, margins, dropped in (("output margin", output, 0), ("input margin", input_margin, 1)):
        geometric = np.array([np.prod(margins[:, i]) ** (1 / m) for i in range(n)])
        np.testing.assert_allclose(out["geometric"][name], geometric, rtol=1e-10)
        keep = np.arange(n) != dropped
        logs = np.log10(margins[:, keep]).mean(axis=0)
        r = np.corrcoef(mean_depth[keep], logs)[0, 1]
        got, low, high = out["r"][name]
        assert got == pytest.approx(r) and r < -0.5 and low < r < high


def curves(gap, test, *, start_gap=0.0, start_test=0.1):
    """Learning curves whose 'original minus new' gap and test accuracy follow the given values."""
    gap, test = np.r_[start_gap, gap], np.r_[start_test, test]
    new = np.full(len(gap), 0.3)
    return {
        NOISE_SETS[0]: np.linspace(0.1, 1.0, len(gap)),
        NOISE_SETS[1]: new,
        NOISE_SETS[2]: new + gap,
        NOISE_SETS[3]: test,
    }


def test_curve_features_each_present_and_absent():
    features = analysis.curve_features(curves([0.3, 0.2, -0.1], [0.6, 0.8, 0.6]))
    assert (
        features["original first"]
        and features["crossing"]
        and features["test maximum before the end"]
    )
    assert (
        features["gap"] == pytest.approx(0.3)
        and features["drop"] == pytest.approx(0.2)
        and features["peak"] == 2
    )
    none = analysis.curve_features(
        curves([-0.1, -0.2, -0.3], [0.5, 0.6, 0.7], start_gap=0.5, start_test=0.9)
    )
    assert not any(
        none[name] for name in ("original first", "crossing", "test maximum before the end")
    )  # the
    # first point (initialisation) is ignored
    no_crossing = analysis.curve_features(curves([0.1, 0.3, 0.2], [0.5, 0.6, 0.7]))
    assert no_crossing["original first"] and not no_crossing["crossing"]
    small = analysis.curve_features(curves([0.01, -0.05], [0.7, 0.69]))  # within the margin
    assert (
        not small["original first"]
        and small["crossing"]
        and not small["test maximum before the end"]
    )
    assert analysis.curve_features(curves([0.01, -0.05], [0.7, 0.69]), margin=0.005)[
        "original first"
    ]


def test_noise_curves_follow_their_definitions():
    run = fake_run(3, n_pool=60, n_test=20)
    rng = np.random.default_rng(3)
    corrupted = np.zeros(80, bool)
    corrupted[rng.choice(60, 20, replace=False)] = True
    run.arrays["corrupted"] = corrupted
    run.arrays["fit_labels"] = np.where(corrupted, (run["labels"] + 1) % N_CLASSES, run["labels"])
    run.arrays["checkpoint_predictions"] = rng.integers(0, N_CLASSES, (5, 80))
    training, inference = analysis.noise_curves(run)
    history, train = run["checkpoint_predictions"], run["in_train"] & ~run["is_test"]
    clean, new, original, test = NOISE_SETS
    np.testing.assert_allclose(
        training[new], (history[:, corrupted] == run["fit_labels"][corrupted]).mean(1)
    )
    np.testing.assert_allclose(
        training[original], (history[:, corrupted] == run["labels"][corrupted]).mean(1)
    )
    np.testing.assert_allclose(
        training[clean],
        (history[:, train & ~corrupted] == run["labels"][train & ~corrupted]).mean(1),
    )
    assert (training[new] + training[original] <= 1 + 1e-12).all()  # no prediction scores on both
    np.testing.assert_allclose(
        inference[test],
        (run["probe_predictions"][:, run["is_test"]] == run["labels"][run["is_test"]]).mean(1),
    )
    assert training["steps"].tolist() == run["checkpoint_steps"].tolist()
    run.arrays["checkpoint_predictions"] = np.zeros((0, 80), np.int16)  # an untrained network
    training, _ = analysis.noise_curves(run)
    assert training["steps"].tolist() == [0]
    np.testing.assert_allclose(
        training[new],
        [(run["network_predictions"][corrupted] == run["fit_labels"][corrupted]).mean()],
    )
    assert not analysis.curve_features(training)["crossing"]


def hinge_run(seed, margin, depth, hidden_right):
    """A run with a chosen output margin and PD on every training point, and hidden probes right on
    a share."""
    run = fake_run(seed, n_pool=40, n_test=10)
    n, labels = 50, run["labels"]
    logits = np.zeros((n, N_CLASSES), np.float32)
    logits[np.arange(n), labels] = np.asarray(margin, np.float32)
    run.arrays.update(
        logits=logits,
        network_predictions=labels.astype(np.int16),
        depth=np.asarray(depth, np.int8),
        undecided=np.zeros(n, bool),
    )
    probes = np.tile(labels, (N_PROBES, 1))
    wrong = np.random.default_rng(seed).random((N_PROBES - 2, n)) >= hidden_right
    probes[1:-1] = np.where(wrong, (labels + 1) % N_CLASSES, labels)
    run.arrays["probe_predictions"] = probes.astype(np.int16)
    return run


def test_hinge_summary_with_known_margins_and_depths():
    rng = np.random.default_rng(0)
    runs = {
        "untrained": hinge_run(0, rng.uniform(0, 1e-3, 50), np.full(50, 5), 0.3),
        "0-Hinge": hinge_run(1, rng.uniform(1e-4, 3e-4, 50), np.full(50, 4), 0.35),
        "cross-entropy": hinge_run(2, rng.uniform(10, 20, 50), np.full(50, 1), 0.9),
    }
    out = analysis.hinge_summary(runs)
    train = runs["0-Hinge"]["in_train"] & ~runs["0-Hinge"]["is_test"]
    m_h = runs["0-Hinge"]["logits"][train].max(1).astype(float)
    m_c = runs["cross-entropy"]["logits"][train].max(1).astype(float)
    value, low, high = out["margin_ratio"]
    assert (
        value == pytest.approx(m_c.mean() / m_h.mean(), rel=1e-5)
        and low <= value <= high
        and low > 1e4
    )
    assert out["pd_gap"] == pytest.approx((3.0, 3.0, 3.0))  # constant depths: no spread
    assert out["pd_gap_all"] == pytest.approx((3.0, 3.0, 3.0))
    hits = {
        name: (run["probe_predictions"][1:-1][:, train] == run["labels"][train]).mean(0)
        for name, run in runs.items()
    }
    excess = (hits["0-Hinge"] - hits["untrained"]).mean() - 0.25 * (
        hits["cross-entropy"] - hits["untrained"]
    ).mean()
    assert (
        out["gain_excess"][0] == pytest.approx(excess)
        and out["gain_excess"][1] <= excess <= out["gain_excess"][2]
    )
    assert out["softmax_only"] == 0.0
    table = out["table"]
    assert list(table.index) == ["untrained", "0-Hinge", "cross-entropy"]
    assert table.loc["0-Hinge", "output margin, mean"] == pytest.approx(m_h.mean(), rel=1e-5)
    assert (
        table.loc["cross-entropy", "mean PD (train)"] == 1.0
        and table.loc["untrained", "steps"] == 40
    )
    assert pd.api.types.is_integer_dtype(table["steps"])
    assert set(out["curves"]["0-Hinge"]) == {"training split (leave-one-out)", "test split"}
    # undecided 0-Hinge points leave the PD gap but stay in the gap over every point
    train_index = np.flatnonzero(train)
    runs["0-Hinge"].arrays["undecided"][train_index[:10]] = True
    runs["0-Hinge"].arrays["depth"][train_index[:10]] = 5
    out = analysis.hinge_summary(runs)
    assert out["pd_gap"][0] == pytest.approx(3.0) and out["softmax_only"] == pytest.approx(10 / 40)
    assert out["pd_gap_all"][0] == pytest.approx((30 * 4 + 10 * 5) / 40 - 1)
    assert table.loc["0-Hinge", "undecided (%)"] == 0.0
    assert analysis.hinge_summary(runs)["table"].loc["0-Hinge", "undecided (%)"] == 25.0
    from pdlib.verdicts import judge_zero_hinge

    assert judge_zero_hinge(out).verdict in VERDICTS


def test_hinge_learning_curves_and_cause():
    run = fake_run(0, n_pool=40, n_test=10)
    run.arrays["checkpoint_predictions"] = np.tile(run["fit_labels"], (5, 1))
    run.arrays["checkpoint_predictions"][0] = (run["fit_labels"] + 1) % N_CLASSES
    curves = analysis.hinge_learning_curves({"a": run, "b": fake_run(1)})
    steps, accuracy = curves["a"]
    assert steps.tolist() == [0, 10, 20, 30, 40] and accuracy.tolist() == [0, 1, 1, 1, 1]
    names = ["0-Hinge", "cross-entropy", "cross-entropy, 0-Hinge regime", "0-Hinge, default head"]
    table = pd.DataFrame(
        {
            "output margin, mean": [2e-4, 15.0, 1.0, 3e-2],
            "training accuracy": [1.0, 1.0, 1.0, 1.0],
            "steps": [1000, 400, 3000, 3000],
        },
        index=names,
    )
    text = analysis.hinge_cause(table)
    assert "the loss, not the regime" in text and "sets the size" in text
    assert "5e+03x the 0-Hinge margin" in text and "3,000 steps" in text
    table.loc["cross-entropy, 0-Hinge regime", "output margin, mean"] = 5e-4
    assert "the regime alone keeps margins small" in analysis.hinge_cause(table)
    table.loc["cross-entropy, 0-Hinge regime", "training accuracy"] = 0.56  # not fitted
    text = analysis.hinge_cause(table)
    assert "fits 56.0 %" in text and "cannot tell the loss from the regime" in text
    table.loc["0-Hinge, default head", ["output margin, mean", "training accuracy"]] = [3e-4, 0.8]
    text = analysis.hinge_cause(table)
    assert "matters little" in text and "does not fit its data" in text


def test_iteration_resolution_reads_each_schedule_from_its_rows(rng):
    """Networks with 10 even snapshots over 5 epochs of 10 steps, and 4 extras inside epoch 1: each
    schedule's r is the Pearson r of a loop over the rows it keeps (iteration learned in steps,
    rescaled per network); the extras change only the row that reads them."""
    n_models, n_points, n_probes = 6, 300, 5
    even_steps = np.arange(0, 51, 5)
    steps = np.union1d(even_steps, [2, 4, 6, 8])
    depth = rng.integers(0, n_probes, (n_models, n_points))
    held = rng.random((n_models, n_points)) < 0.3
    artifacts = []
    for m in range(n_models):
        # a point switches to its final class at a step that grows with its PD, plus noise
        switch = np.clip(depth[m] * 10 + rng.integers(-6, 7, n_points), 0, 50)
        history = (steps[:, None] >= switch[None, :]).astype(np.int16)
        history[:, switch == 0] = 1
        meta = {"config": {"train": {"n_checkpoints": 10, "epochs": 5}}}
        arrays = {
            "checkpoint_predictions": history,
            "checkpoint_steps": steps,
            "is_test": np.zeros(n_points, bool),
        }
        artifacts.append(Artifact(arrays, meta))
    stats = {"depth": depth, "held_out": held, "n_probes": n_probes}
    table = analysis.iteration_resolution(artifacts, stats, n_boot=50).set_index("schedule")
    assert list(table.index) == ["5 even", "10 even", "10 even + 4 in epoch 1"]
    assert table.loc["10 even", "checkpoints"] == 10 and table.loc["10 even", "in epoch 1"] == 2
    assert table.loc["10 even + 4 in epoch 1", "in epoch 1"] == 6
    for name, kept in (("5 even", even_steps[::2]), ("10 even + 4 in epoch 1", steps)):
        learned = []
        for artifact in artifacts:
            history = artifact["checkpoint_predictions"][np.isin(steps, kept)]
            first = [
                next(t for t in range(len(kept)) if (history[t:, i] == history[-1, i]).all())
                for i in range(n_points)
            ]
            iteration = kept[first].astype(float)
            learned.append(iteration / np.quantile(iteration, 0.95))
        learned = np.array(learned)
        expected = np.corrcoef(depth[held], learned[held])[0, 1]
        assert table.loc[name, "r per appearance"] == pytest.approx(expected, rel=1e-6)
        assert (
            table.loc[name, "per appearance low"]
            <= expected
            <= table.loc[name, "per appearance high"]
        )
    shown = analysis.resolution_display(table.reset_index())
    assert (
        shown["r per appearance [95 % CI]"]
        .str.match(r"^-?\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]$")
        .all()
    )
    numbers = analysis.resolution_numbers(table.reset_index(), paper_r=0.99)
    assert numbers["res_coarse_n"] == 5 and numbers["res_fine_n"] == 14
    assert "gap" in numbers["res_reading"]


def test_iteration_resolution_on_a_short_run_keeps_every_schedule_it_can():
    """Three steps of training and 40 checkpoints: steps coincide, each schedule keeps the
    snapshots there are (the paper-dryrun book trains this briefly)."""
    steps = np.array([0, 1, 2, 3])
    history = np.array([[0, 0], [1, 0], [1, 1], [1, 1]], dtype=np.int16)
    meta = {"config": {"train": {"n_checkpoints": 40, "epochs": 3}}}
    arrays = {
        "checkpoint_predictions": history,
        "checkpoint_steps": steps,
        "is_test": np.zeros(2, bool),
    }
    stats = {"depth": np.array([[0, 1]]), "held_out": np.array([[True, True]]), "n_probes": 3}
    table = analysis.iteration_resolution([Artifact(arrays, meta)], stats, n_boot=10)
    assert list(table["schedule"]) == ["5 even", "10 even", "20 even", "40 even"]
    assert (table["checkpoints"] == 3).all()
