"""pdlib.labelnoise: the suspicion score, the ranking score, per-example scores of an ensemble, and
how well rankings find flipped labels (AUROC, average precision, precision at k) on scores with
known answers."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import digits_run_config
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from pdlib import labelnoise
from pdlib.difficulty import CORNERS
from pdlib.ensembles import ensemble_statistics, run_ensemble

# --- the suspicion score -----------------------------------------------------------------------


def test_suspicion_score_docstring_values():
    assert labelnoise.suspicion_score([0.0, 1.0, 0.5], [0, 0, 8], [8, 0, 8], 8).tolist() == [
        1.0,
        0.0,
        0.25,
    ]
    # the four corners with every held-out network rejecting the label
    got = labelnoise.suspicion_score(np.zeros(4), [0, 0, 8, 8], [0, 8, 0, 8], 8)
    assert got.tolist() == [0.5, 1.0, 0.0, 0.5]  # easy, different class, unless-label, ambiguous
    assert np.isnan(labelnoise.suspicion_score([np.nan, 0.5], [1, np.nan], [1, 1], 8)).all()


unit = st.floats(0, 1, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(unit, unit, unit, unit, st.integers(1, 14))
def test_suspicion_score_is_in_range_and_monotone(c, d, val, train, max_depth):
    val, train = val * max_depth, train * max_depth
    score = labelnoise.suspicion_score([c], [val], [train], max_depth)[0]
    assert 0 <= score <= 1 + 1e-12
    # monotone in 1 - Ĉ (held-out networks rejecting the label) ...
    lower_c = labelnoise.suspicion_score([c * d], [val], [train], max_depth)[0]
    assert lower_c >= score - 1e-12
    # ... and in PD_train - PD_val (towards "looks like a different class")
    later_train = labelnoise.suspicion_score(
        [c], [val], [train + d * (max_depth - train)], max_depth
    )[0]
    earlier_val = labelnoise.suspicion_score([c], [val * d], [train], max_depth)[0]
    assert later_train >= score - 1e-12 and earlier_val >= score - 1e-12


def test_suspicion_score_matches_its_formula(rng):
    c, val, train = rng.random(100), rng.uniform(0, 10, 100), rng.uniform(0, 10, 100)
    expected = [(1 - c[i]) * (1 + (train[i] - val[i]) / 10) / 2 for i in range(100)]
    np.testing.assert_allclose(labelnoise.suspicion_score(c, val, train, 10), expected, rtol=1e-12)


# --- detection measures ------------------------------------------------------------------------


@pytest.fixture
def flipped(rng):
    corrupted = np.zeros(300, bool)
    corrupted[rng.choice(300, 40, replace=False)] = True
    return corrupted


def test_detection_table_known_answers(flipped, rng):
    scores = {
        "perfect": flipped + 0.1 * rng.random(300),
        "reversed": -flipped.astype(float),
        "random": rng.random(300),
        "with -inf": np.where(flipped, 1.0, -np.inf),
    }
    table = labelnoise.detection_table(scores, flipped, n_boot=50)
    assert list(table.index) == list(scores) and table.attrs["k"] == 40
    assert table.loc["perfect", ["AUROC", "average precision", "precision at k"]].tolist() == [
        1.0,
        1.0,
        1.0,
    ]
    assert table.loc["with -inf", "AUROC"] == 1.0  # -inf (no score) ranks last, not an error
    assert table.loc["reversed", "AUROC"] == 0.0 and table.loc["reversed", "precision at k"] == 0.0
    assert abs(table.loc["random", "AUROC"] - 0.5) < 0.15
    assert table.loc["random", "AUROC"] == pytest.approx(roc_auc_score(flipped, scores["random"]))
    for measure in ("AUROC", "average precision", "precision at k"):
        assert (table[f"{measure} low"] <= table[measure] + 1e-12).all()
        assert (table[measure] <= table[f"{measure} high"] + 1e-12).all()


@pytest.mark.parametrize("seed", range(6))
def test_auroc_and_average_precision_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    truth = rng.random(n) < rng.uniform(0.05, 0.6)
    truth[:2] = [True, False]  # both classes present
    score = np.round(
        truth * rng.uniform(0, 1) + rng.normal(0, 1, n), int(rng.integers(0, 3))
    )  # many ties
    assert labelnoise.auroc(score, truth) == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    assert labelnoise.average_precision(score, truth) == pytest.approx(
        average_precision_score(truth, score), abs=1e-12
    )


def loop_precision_at_k(score, truth, k):
    """Walk the distinct scores from the highest; the group tied at the k-th place counts pro
    rata."""
    hits, left = 0.0, k
    for value in sorted(set(score), reverse=True):
        group = [truth[i] for i in range(len(score)) if score[i] == value]
        taken = min(left, len(group))
        hits, left = hits + taken * sum(group) / len(group), left - taken
        if left == 0:
            break
    return hits / k


def test_precision_at_k_matches_a_loop(rng):
    score, truth = rng.integers(0, 5, 100).astype(float), rng.random(100) < 0.3
    for k in (1, 7, int(truth.sum()), 100):
        assert labelnoise.precision_at_k(score, truth, k) == pytest.approx(
            loop_precision_at_k(score, truth, k)
        )
    assert labelnoise.precision_at_k(score, truth) == pytest.approx(
        loop_precision_at_k(score, truth, truth.sum())
    )


def test_precision_at_k_is_the_mean_over_random_tie_breaks(rng):
    score, truth, k = rng.integers(0, 3, 30).astype(float), rng.random(30) < 0.4, 10
    draws = [truth[np.lexsort((rng.permutation(30), -score))[:k]].mean() for _ in range(4000)]
    assert labelnoise.precision_at_k(score, truth, k) == pytest.approx(np.mean(draws), abs=0.01)
    order = rng.permutation(30)  # and it does not depend on the order of the points
    assert labelnoise.precision_at_k(score[order], truth[order], k) == labelnoise.precision_at_k(
        score, truth, k
    )


def test_measures_without_both_classes_are_nan():
    assert np.isnan(labelnoise.auroc([0.1, 0.2], [True, True]))
    assert np.isnan(labelnoise.auroc([0.1, 0.2], [False, False]))
    assert np.isnan(labelnoise.average_precision([0.1, 0.2], [False, False]))
    assert labelnoise.average_precision([0.1, 0.2], [True, True]) == 1.0
    assert (
        labelnoise.precision_at_k([0.3, 0.1], [False, False]) == 0.0
    )  # k = 1 when nothing is true


def test_precision_at_k_of_a_constant_score_is_the_noise_rate():
    truth = np.array([False, True, True, False])
    # all four tied at the k = 2 places: half of them flipped
    table = labelnoise.detection_table({"flat": np.zeros(4)}, truth, n_boot=5)
    assert table.loc["flat", "precision at k"] == 0.5 and table.loc["flat", "AUROC"] == 0.5


# --- scores of a small ensemble with flipped labels --------------------------------------------

NOISY = digits_run_config(
    n_test=20,
    holdout_fraction=0.25,
    label_noise=0.2,
    train={"epochs": 6, "n_checkpoints": 2},
    seed=30,
)


@pytest.fixture(scope="module")
def scored():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ensemble = run_ensemble(NOISY, 4, progress=False)
        return ensemble, labelnoise.example_scores(
            ensemble, class_names=[str(d) for d in range(10)]
        )
    finally:
        torch.set_num_threads(before)


def test_example_scores(scored):
    ensemble, table = scored
    stats = ensemble_statistics(ensemble, reference="fit_labels")
    assert len(table) == 200 and table.index.name == "pool index"
    np.testing.assert_array_equal(table["Ĉ"], stats["consistency"])
    np.testing.assert_array_equal(table["PD_val"], stats["depth_val"])
    assert table["given label"].tolist() == [str(c) for c in stats["labels"]]
    np.testing.assert_allclose(
        table["suspicion"],
        labelnoise.suspicion_score(
            stats["consistency"], stats["depth_val"], stats["depth_train"], 8
        ),
        equal_nan=True,
    )
    seen = stats["n_held_out"] > 0
    placed = seen & (stats["n_trained"] > 0)
    for i in np.flatnonzero(placed)[:50]:
        x, y = stats["depth_val"][i] / 8, stats["depth_train"][i] / 8
        distances = {name: np.hypot(x - cx, y - cy) for name, (cx, cy) in CORNERS.items()}
        assert table.loc[i, "difficulty type"] == min(distances, key=distances.get)
        assert table.loc[i, "distance to corner"] == pytest.approx(min(distances.values()))
    probabilities = table.attrs["probabilities"]
    assert probabilities.shape == (200, 10)
    np.testing.assert_allclose(probabilities[seen].sum(axis=1), 1, rtol=1e-6)
    assert np.isnan(probabilities[~seen]).all()
    assert (table["held out"] + table["trained on"] == 4).all()
    # AUM and training loss come from the training appearances only
    assert np.isnan(table["AUM"][table["trained on"] == 0]).all()


def test_points_outside_the_plane_have_no_difficulty_type(scored):
    """A point never held out (no PD_val) or never trained on (no PD_train) has no place in the
    plane."""
    _, table = scored
    unplaced = table["PD_val"].isna() | table["PD_train"].isna()
    assert (
        unplaced.sum() > 10
    )  # 4 networks holding out 25 % each: about a third of the points are never held out
    assert not table.loc[unplaced, "difficulty type"].isin(list(CORNERS)).any()
    assert table.loc[unplaced, "distance to corner"].isna().all()


def test_method_scores_rank_flipped_labels(scored):
    ensemble, table = scored
    scores = labelnoise.method_scores(table)
    assert list(scores) == list(labelnoise.METHODS)
    assert all(score.shape == (200,) and not np.isnan(score).any() for score in scores.values())
    corrupted = next(ensemble.artifacts())["corrupted"][:200]
    assert corrupted.sum() == 40
    detection = labelnoise.detection_table(scores, corrupted, n_boot=20)
    assert (
        detection.loc[labelnoise.METHODS[0], "AUROC"] > 0.5
    )  # better than chance even for 4 tiny networks
    top = labelnoise.top_suspects(table, 10)
    ranked = table["ranking score"].fillna(-1).to_numpy()
    assert len(top) == 10 and ranked[top].tolist() == sorted(ranked, reverse=True)[:10]
    by_suspicion = labelnoise.top_suspects(table, 10, column="suspicion")
    assert (
        table["suspicion"].to_numpy()[by_suspicion].tolist()
        == sorted(table["suspicion"].fillna(-1), reverse=True)[:10]
    )


def test_ranking_score_is_the_rank_average_of_its_signals(scored):
    _, table = scored
    signals = labelnoise.signal_scores(table)
    assert list(signals) == list(labelnoise.SIGNALS)
    np.testing.assert_allclose(
        table["ranking score"], labelnoise.rank_average(signals, labelnoise.RANKING)
    )
    assert labelnoise.RANKING in labelnoise.CANDIDATES
    # the old suspicion score keeps its column, next to the new one
    columns = list(table.columns)
    assert columns.index("ranking score") == columns.index("suspicion") + 1
    # every point trained on at least once has a ranking score (AUM needs no held-out network)
    assert table.loc[table["trained on"] > 0, "ranking score"].notna().all()
    # the held-out signals are missing exactly where the point was never held out
    never_held = (table["held out"] == 0).to_numpy()
    assert np.isnan(signals["cleanlab"][never_held]).all()
    assert np.isfinite(signals["cleanlab"][~never_held]).all()
    candidates = labelnoise.candidate_scores(table, signals)
    assert len(candidates) == len(labelnoise.CANDIDATES)
    assert all(np.isfinite(score).any() for score in candidates.values())


def test_suspect_reasons_name_the_ranking_signals_and_the_vote(scored):
    _, table = scored
    top = labelnoise.top_suspects(table, 5)
    reasons = labelnoise.suspect_reasons(table, top)
    columns_only = pd.DataFrame({column: table[column].to_numpy() for column in table.columns})
    assert not columns_only.attrs
    from_columns = labelnoise.suspect_reasons(columns_only, top)
    assert reasons == from_columns  # the audit's table (columns, no attrs) gives the same
    for row, reason in zip(top, reasons, strict=True):
        entry = table.iloc[row]
        assert f"AUM {entry['AUM']:.2f} (top " in reason
        assert f"PD_train {entry['PD_train']:.2f} (top " in reason
        rejects = entry["consensus class"] != entry["given label"]
        assert ("the label (" in reason) == bool(rejects and entry["held out"] > 0)
    # the most suspicious point has the lowest AUM (or near it): its share above is small
    share = float(reasons[0].split("(top ")[1].split(" %")[0])
    assert share <= 50


def test_example_scores_reads_the_ensemble_once(scored, monkeypatch):
    """The statistics and the out-of-fold means come from one pass over the stored models."""
    import pdlib.ensembles as ensembles

    ensemble, table = scored
    loads = []
    real = ensembles.load_artifact
    monkeypatch.setattr(
        ensembles, "load_artifact", lambda *a, **k: loads.append(1) or real(*a, **k)
    )
    again = labelnoise.example_scores(ensemble, class_names=[str(d) for d in range(10)])
    assert len(loads) == len(ensemble)
    pd.testing.assert_frame_equal(again, table)
