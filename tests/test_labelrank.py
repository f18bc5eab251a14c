"""pdlib.labelrank: the noise settings, the rank average, the selection rule, and the paired
standing against the peers, on cases with known answers and on negative controls."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdlib import labelnoise, labelrank
from pdlib.experiments import TASKS

# --- the settings --------------------------------------------------------------------------------


def _noise(setting):
    return (setting.task, setting.rate, setting.pair, setting.targets)


def test_design_and_evaluation_settings_are_fixed_and_disjoint():
    design = {_noise(s) for s in labelrank.DESIGN_SETTINGS}
    evaluation = [_noise(s) for s in labelrank.EVALUATION_SETTINGS]
    assert len(design) == 4 and len(set(evaluation)) == 6 and not design & set(evaluation)
    names = [s.name for s in (*labelrank.DESIGN_SETTINGS, *labelrank.EVALUATION_SETTINGS)]
    assert len(set(names)) == len(names) and labelrank.ORIGINAL.name not in names
    assert all(s.task in TASKS for s in labelrank.EVALUATION_SETTINGS)
    # the evaluation settings: two other uniform rates, two other pairs, asymmetric noise
    # and a second dataset
    kinds = [
        "pair" if s.pair else "asymmetric" if s.targets else "uniform"
        for s in labelrank.EVALUATION_SETTINGS
        if s.task == "fashion_mnist"
    ]
    assert sorted(kinds) == ["asymmetric", "pair", "pair", "uniform", "uniform"]
    assert {s.task for s in labelrank.EVALUATION_SETTINGS} == {"fashion_mnist", "digits"}
    (asymmetric,) = (s for s in labelrank.EVALUATION_SETTINGS if s.targets)
    assert sorted(asymmetric.targets) == list(range(10))  # every class flipped, to another class
    assert all(t != c for c, t in enumerate(asymmetric.targets))


def test_evaluation_settings_have_their_own_set_up():
    from pdlib.profiles import PROFILES

    assert {labelrank.plan_key(s) for s in labelrank.DESIGN_SETTINGS} == {"label_errors"}
    assert labelrank.plan_key(labelrank.ORIGINAL) == "label_errors"
    assert {labelrank.plan_key(s) for s in labelrank.EVALUATION_SETTINGS} == {
        "label_errors_evaluation"
    }
    for profile in PROFILES.values():  # every task of the settings is in its set-up
        for setting in (*labelrank.DESIGN_SETTINGS, *labelrank.EVALUATION_SETTINGS):
            assert setting.task in profile.setup(labelrank.plan_key(setting)).datasets


def test_setting_noise_is_the_ensemble_keywords():
    setting = labelrank.EVALUATION_SETTINGS[2]
    assert setting.noise() == {"label_noise": 0.25, "noise_pair": (2, 4), "noise_targets": ()}
    assert labelrank.ORIGINAL.noise()["label_noise"] == 0.0


# --- the rank average ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=30), st.integers(0, 10))
def test_rank_average_depends_only_on_the_order(values, shift):
    values = np.array(values, dtype=np.float64)
    one = labelnoise.rank_average({"a": values}, ["a"])
    # any increasing transform gives the same score
    again = labelnoise.rank_average({"a": values**3 + shift}, ["a"])
    np.testing.assert_allclose(one, again)
    order = np.argsort(values, kind="stable")
    assert (np.diff(one[order]) >= 0).all() and ((0 < one) & (one < 1)).all()


def test_rank_average_of_opposite_signals_is_flat_and_nan_only_without_signals():
    x = np.arange(6.0)
    np.testing.assert_allclose(labelnoise.rank_average({"a": x, "b": -x}, ["a", "b"]), 0.5)
    score = labelnoise.rank_average({"a": np.array([np.nan, 1.0]), "b": np.full(2, np.nan)}, "ab")
    assert np.isnan(score[0]) and score[1] == 0.5


# --- the selection rule -------------------------------------------------------------------------


def _detections(criteria: dict):
    """Design-setting detection tables in which each candidate scores ``criteria`` on every
    measure (default 0.5)."""
    names = [labelnoise.candidate_name(c) for c in labelnoise.CANDIDATES]
    values = [criteria.get(name, 0.5) for name in names]
    table = pd.DataFrame({m: values for m in labelrank.MEASURES}, index=names)
    return {s.name: table for s in labelrank.DESIGN_SETTINGS}


def test_selection_picks_the_highest_criterion():
    detections = _detections({"AUM + cleanlab": 0.9, "AUM": 0.8})
    assert labelrank.select_ranking(detections) == ("AUM", "cleanlab")
    table = labelrank.selection_table(detections)
    assert table.index[:2].tolist() == ["AUM + cleanlab", "AUM"]
    assert table.loc["AUM + cleanlab", "criterion"] == pytest.approx(0.9)
    assert table.loc["AUM + cleanlab", "signals"] == 2


def test_selection_ties_go_to_fewer_signals_then_the_first_listed():
    # equal to 3 decimals: the single signal wins over the pair, though listed later
    detections = _detections({"AUM + training loss": 0.9001, "cleanlab": 0.9004})
    assert labelrank.select_ranking(detections) == ("cleanlab",)
    detections = _detections({"AUM": 0.9, "training loss": 0.9})
    assert labelrank.select_ranking(detections) == ("AUM",)  # listed before training loss
    detections = _detections({"AUM": 0.9, "training loss": 0.9011})  # apart at 3 decimals
    assert labelrank.select_ranking(detections) == ("training loss",)


def test_selection_averages_over_every_design_setting():
    detections = _detections({})
    first, *rest = labelrank.DESIGN_SETTINGS
    detections[first.name] = detections[first.name].copy()
    detections[first.name].loc["PD_train"] = 1.0  # 1.0 in one setting: (1 + 3 * 0.5) / 4
    detections[rest[0].name] = detections[rest[0].name].copy()
    detections[rest[0].name].loc["AUM"] = [0.7, 0.7, 0.7]  # 0.7 in one: lower mean
    table = labelrank.selection_table(detections)
    assert table.loc["PD_train", "criterion"] == pytest.approx(0.625)
    assert labelrank.select_ranking(detections) == ("PD_train",)


# --- the standing against the peers --------------------------------------------------------------


def test_standing_boundaries():
    assert labelrank.standing(1e-9, 0.1) == "ahead"
    assert labelrank.standing(-0.1, -1e-9) == "behind"
    assert labelrank.standing(0.0, 0.1) == "level"  # touching zero is not apart from it
    assert labelrank.standing(-0.1, 0.0) == "level"


@pytest.fixture
def noisy_scores():
    rng = np.random.default_rng(0)
    truth = rng.random(2000) < 0.1
    signal = truth + rng.normal(0, 0.6, 2000)
    return truth, {
        labelnoise.METHODS[0]: truth + rng.normal(0, 0.3, 2000),  # far better than the peers
        "cleanlab label quality": signal,
        "AUM": truth + rng.normal(0, 0.7, 2000),
        "random": rng.random(2000),
        "copy of cleanlab": signal.copy(),
    }


def test_peer_standing_ahead_level_and_behind(noisy_scores):
    truth, scores = noisy_scores
    table = labelrank.peer_standing(scores, truth, n_boot=200)
    assert table.index.tolist() == ["AUROC", "average precision"]
    assert (table["standing"] == "ahead").all() and (
        table["best peer"] == "cleanlab label quality"
    ).all()
    assert (table["low"] <= table["difference"]).all() and (
        table["difference"] <= table["high"]
    ).all()
    # the same ranking as the best peer is level, never ahead
    level = labelrank.peer_standing(scores, truth, method="copy of cleanlab", n_boot=200)
    assert (level["standing"] == "level").all() and (level["difference"] == 0).all()
    # negative control: a random ranking must read "behind"
    control = labelrank.peer_standing(scores, truth, method="random", n_boot=200)
    assert (control["standing"] == "behind").all()


def test_paired_difference_is_narrower_than_separate_intervals(noisy_scores):
    """Both scores resampled on the same points: the shared noise cancels."""
    truth, scores = noisy_scores
    close = scores["cleanlab label quality"] + np.random.default_rng(1).normal(0, 0.05, len(truth))
    difference, low, high = labelrank.paired_difference(
        close, scores["cleanlab label quality"], truth, "AUROC", n_boot=200
    )
    table = labelnoise.detection_table({"x": close}, truth, n_boot=200)
    assert high - low < 0.5 * (table.loc["x", "AUROC high"] - table.loc["x", "AUROC low"])
    assert low <= difference <= high


def test_standing_table_strings(noisy_scores):
    truth, scores = noisy_scores
    table = labelrank.standing_table({"s": labelrank.peer_standing(scores, truth, n_boot=20)})
    assert table.columns.tolist() == [
        "setting",
        "measure",
        "ranking score",
        "best peer",
        "difference [95 %]",
        "standing",
    ]
    assert table.loc[0, "best peer"].startswith("cleanlab label quality 0.")


def test_summary_table():
    full = labelnoise.detection_table(
        {"x": np.arange(6.0), "y": -np.arange(6.0)}, np.arange(6) >= 3, n_boot=10
    )
    summary = labelrank.summary_table({"40 %": full})
    assert summary.shape == (2, 6) and summary["k"].tolist() == [3, 3]
    assert summary.loc[0, "AUROC"].startswith("1.000 [")


def test_noise_setting_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        labelrank.ORIGINAL.rate = 0.5


# --- the whole study on a small real ensemble ---------------------------------------------


@pytest.fixture(scope="module")
def small_study():
    import torch
    from conftest import digits_run_config

    from pdlib.ensembles import run_ensemble

    config = digits_run_config(
        n_test=20, holdout_fraction=0.25, label_noise=0.2, train={"epochs": 6}, seed=31
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ensemble = run_ensemble(config, 4, progress=False)
    finally:
        torch.set_num_threads(before)
    table, flipped = labelnoise.example_scores(ensemble), labelnoise.flipped_labels(ensemble)
    names = [s.name for s in (*labelrank.DESIGN_SETTINGS, *labelrank.EVALUATION_SETTINGS)]
    tables = dict.fromkeys([labelrank.ORIGINAL.name, *names], table)
    corrupted = {name: flipped for name in tables} | {labelrank.ORIGINAL.name: flipped & False}
    return tables, corrupted, labelrank.study(tables, corrupted, n_boot=20, n_boot_paired=50)


def test_study_tables_and_numbers(small_study):
    tables, corrupted, result = small_study
    assert int(corrupted["uniform 5%"].sum()) == 40  # 20 % of the 200-image pool
    assert set(result.detection) == {s.name for s in labelrank.DESIGN_SETTINGS} | {
        s.name for s in labelrank.EVALUATION_SETTINGS
    }
    assert list(result.detection["uniform 5%"].index) == list(labelnoise.METHODS)
    assert len(result.selection) == len(labelnoise.CANDIDATES)
    assert result.chosen in labelnoise.CANDIDATES
    numbers = result.numbers()
    assert numbers["audit_ranking"] == labelnoise.candidate_name(labelnoise.RANKING)
    import re

    counts = [int(n) for n in re.findall(r"\d+", numbers["standing_counts"])]
    assert len(counts) == 4 and counts[3] == 12 and sum(counts[:3]) == 12
    # the random control is judged by the same test and never reads ahead
    assert numbers["control_never_ahead"] and numbers["control_counts"].startswith("ahead in 0")
    settings = labelrank.settings_table(corrupted)
    assert settings["role"].tolist() == ["reference"] + ["design"] * 4 + ["evaluation"] * 6
    assert settings.loc[0, "flipped labels"] == "0 of 200"
