"""pdlib.metrics against literal loop implementations and reference libraries (numpy, scipy),
with hypothesis properties where a definition has invariants, and a clear error for every bad input.

Sections: prediction depth; the ensemble metrics (Eq. 1, the consensus, Eq. 2, PD_val / PD_train);
iteration learned; summaries (probe accuracy, rescaling); relations between per-point quantities
(correlations, the lower envelope, means by depth); uncertainty intervals.
"""

import math
from statistics import NormalDist

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdlib.metrics import (
    accuracy_by_depth,
    bootstrap_interval,
    consensus_class,
    consensus_consistency,
    consensus_from_votes,
    consistency_score,
    depth_correlation_matrix,
    held_out_votes,
    iteration_learned,
    lower_envelope,
    mean_by_depth,
    pearson,
    pearson_interval,
    prediction_depth,
    probe_accuracy,
    rank_correlation,
    rescale_depth,
    rescale_iteration,
    softmax_disagreement,
    split_means,
    undecided_depth,
    wilson_interval,
)

# --- prediction depth (Section 2.1) ------------------------------------------------------------


def depth_by_loop(probe_predictions, final_prediction):
    """The paper's definition, read literally, one point at a time."""
    n_probes, n = probe_predictions.shape
    depth = np.empty(n, dtype=np.int64)
    for i in range(n):
        depth[i] = n_probes - 1  # even the softmax probe disagrees: decided at the output
        for layer in range(n_probes):
            if all(
                probe_predictions[later, i] == final_prediction[i]
                for later in range(layer, n_probes)
            ):
                depth[i] = layer
                break
    return depth


probe_tables = st.integers(1, 12).flatmap(
    lambda n_probes: st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            arrays(np.int64, (n_probes, n), elements=st.integers(0, 3)),
            arrays(np.int64, (n,), elements=st.integers(0, 3)),
        )
    )
)


@settings(max_examples=300, deadline=None)
@given(probe_tables)
def test_depth_matches_loop(table):
    probes, final = table
    np.testing.assert_array_equal(prediction_depth(probes, final), depth_by_loop(probes, final))


@settings(max_examples=100, deadline=None)
@given(probe_tables, st.permutations(range(4)))
def test_relabelling_classes_leaves_depth_unchanged(table, permutation):
    probes, final = table
    relabel = np.asarray(permutation)
    np.testing.assert_array_equal(
        prediction_depth(relabel[probes], relabel[final]), prediction_depth(probes, final)
    )


@settings(max_examples=100, deadline=None)
@given(arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 9)), st.integers(1, 15))
def test_all_probes_agree_gives_zero(final, n_probes):
    assert (prediction_depth(np.tile(final, (n_probes, 1)), final) == 0).all()


@settings(max_examples=100, deadline=None)
@given(probe_tables)
def test_range_and_last_probe(table):
    probes, final = table
    depth = prediction_depth(probes, final)
    assert ((0 <= depth) & (depth < probes.shape[0])).all()
    # a disagreeing softmax probe pins the depth to the last index
    assert (depth[probes[-1] != final] == probes.shape[0] - 1).all()


@settings(max_examples=200, deadline=None)
@given(probe_tables)
def test_undecided_points_are_those_no_probe_decides(table):
    """Undecided iff no probe index satisfies the definition (checked by a loop over indices)."""
    probes, final = table
    undecided = undecided_depth(probes, final)
    n_probes = probes.shape[0]
    for i in range(len(final)):
        decided_at = [p for p in range(n_probes) if (probes[p:, i] == final[i]).all()]
        assert undecided[i] == (not decided_at)
    assert softmax_disagreement(probes, final) == pytest.approx(undecided.mean())


def test_depth_known_cases():
    probes = np.array([[0, 1, 1, 2], [1, 1, 0, 2], [1, 1, 1, 1]])
    assert prediction_depth(probes, np.array([1, 1, 1, 2])).tolist() == [1, 0, 2, 2]


# --- literal definitions, one point at a time --------------------------------------------------


def loop_metrics(predictions, held_out, labels, n_classes):
    """Eq. 1, the consensus with its tie rule, and Eq. 2."""
    r, n = predictions.shape
    consistency, consensus, star = np.full(n, np.nan), np.full(n, -1), np.full(n, np.nan)
    for i in range(n):
        votes = [int(predictions[m, i]) for m in range(r) if held_out[m, i]]
        if not votes:
            continue
        consistency[i] = sum(v == labels[i] for v in votes) / len(votes)
        counts = [votes.count(c) for c in range(n_classes)]
        tied = [c for c in range(n_classes) if counts[c] == max(counts)]
        consensus[i] = labels[i] if labels[i] in tied else min(tied)
        star[i] = sum(v == consensus[i] for v in votes) / len(votes)
    return consistency, consensus, star


def loop_split_means(values, held_out):
    r, n = values.shape
    val, train = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        held = [values[m, i] for m in range(r) if held_out[m, i]]
        trained = [values[m, i] for m in range(r) if not held_out[m, i]]
        if held:
            val[i] = sum(held) / len(held)
        if trained:
            train[i] = sum(trained) / len(trained)
    return val, train


def loop_iteration_learned(history):
    steps, n = history.shape
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        final = history[-1, i]
        for t in range(steps):
            if all(history[s, i] == final for s in range(t, steps)):
                out[i] = t
                break
    return out


def loop_quantile(values, q):
    """Linear-interpolation quantile (numpy's default), by hand."""
    ordered = sorted(float(v) for v in values)
    position = q * (len(ordered) - 1)
    lo = int(np.floor(position))
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (position - lo) * (ordered[hi] - ordered[lo])


def make_ensemble(r, n, n_classes, seed, p_held_out=0.3):
    """Random predictions, with point 0 never held out and point 1 held out by every model."""
    rng = np.random.default_rng(seed)
    predictions = rng.integers(0, n_classes, (r, n))
    held_out = rng.random((r, n)) < p_held_out
    held_out[:, 0] = False
    if n > 1:
        held_out[:, 1] = True
    labels = rng.integers(0, n_classes, n)
    return predictions, held_out, labels


CASES = [(1, 5, 2), (3, 40, 2), (7, 60, 3), (10, 200, 10), (25, 300, 4), (60, 100, 100)]


# --- against the loops -------------------------------------------------------------------------


@pytest.mark.parametrize("r, n, n_classes", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop(r, n, n_classes, seed):
    predictions, held_out, labels = make_ensemble(r, n, n_classes, seed)
    consistency, consensus, star = loop_metrics(predictions, held_out, labels, n_classes)
    np.testing.assert_array_equal(consistency_score(predictions, held_out, labels), consistency)
    got = consensus_class(predictions, held_out, labels, n_classes)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, consensus)
    np.testing.assert_array_equal(consensus_consistency(predictions, held_out, got), star)
    assert np.isnan(consistency[0]) and consensus[0] == -1 and np.isnan(star[0])  # never held out

    values = np.random.default_rng(seed).normal(size=(r, n))
    val, train = split_means(values, held_out)
    want_val, want_train = loop_split_means(values, held_out)
    np.testing.assert_allclose(val, want_val, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(train, want_train, rtol=1e-12, atol=1e-12)
    assert np.isnan(val[0]) and (n < 2 or np.isnan(train[1]))  # never held out / always held out


@pytest.mark.parametrize("steps, n, n_classes", [(1, 7, 3), (2, 30, 2), (15, 100, 3), (40, 50, 10)])
def test_iteration_learned_matches_loop(steps, n, n_classes, rng):
    history = rng.integers(0, n_classes, (steps, n))
    # make some points settle early, so that the answers spread over 0 .. T
    settle = rng.integers(0, steps, n)
    history = np.where(np.arange(steps)[:, None] >= settle, history[-1], history)
    got = iteration_learned(history)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, loop_iteration_learned(history))
    np.testing.assert_array_equal(got, prediction_depth(history, history[-1]))


def test_iteration_learned_examples():
    assert iteration_learned(np.zeros((5, 4), int)).tolist() == [0, 0, 0, 0]
    assert iteration_learned([[0], [1], [0], [1]]).tolist() == [3]
    assert iteration_learned([[1], [1], [0], [1]]).tolist() == [3]
    assert iteration_learned([[0], [1], [1], [1]]).tolist() == [1]
    assert iteration_learned([[2, 5]]).tolist() == [0, 0]  # a single checkpoint: T = 0


@pytest.mark.parametrize("q", [0.95, 0.5, 1.0, 0.01])
def test_rescale_iteration_matches_loop(q, rng):
    iteration = np.r_[
        0, rng.integers(1, 30, 100)
    ]  # one point at initialisation; the quantile stays > 0
    scale = loop_quantile(iteration, q)
    np.testing.assert_allclose(rescale_iteration(iteration, q), iteration / scale, rtol=1e-12)


def test_rescale_iteration():
    rescaled = rescale_iteration(np.arange(101))
    assert rescaled.dtype == np.float64
    assert rescaled[0] == 0 and rescaled[95] == pytest.approx(1.0) and rescaled[100] > 1
    assert (np.sum(rescaled > 1)) == 5
    assert rescale_iteration(np.zeros(10, int)).tolist() == [0.0] * 10
    # the 95th percentile is 0 when 95 % of the points were right at initialisation
    assert rescale_iteration(np.r_[np.zeros(96), 50.0]).tolist() == [0.0] * 97
    np.testing.assert_allclose(rescale_iteration([0.0, 2.5, 5.0], quantile=1.0), [0.0, 0.5, 1.0])


# --- ties --------------------------------------------------------------------------------------


def test_tie_rules():
    held_out = np.ones((4, 3), dtype=bool)
    predictions = np.array([[2, 2, 0], [2, 2, 0], [1, 3, 3], [1, 3, 3]])
    # point 0: 1 and 2 tie; point 1: 2 and 3 tie; point 2: 0 and 3 tie
    assert consensus_class(predictions, held_out, [2, 2, 3], 4).tolist() == [
        2,
        2,
        3,
    ]  # label among the tied
    assert consensus_class(predictions, held_out, [1, 3, 0], 4).tolist() == [
        1,
        3,
        0,
    ]  # label among the tied
    assert consensus_class(predictions, held_out, [0, 0, 1], 4).tolist() == [
        1,
        2,
        0,
    ]  # not: smallest index
    assert consensus_class(predictions, held_out, [3, 1, 2], 4).tolist() == [
        1,
        2,
        0,
    ]  # not: smallest index


def test_ties_only_among_held_out_models():
    # the training-split votes (rows 2-3) must not break the tie between the held-out ones
    predictions = np.array([[1], [2], [2], [2]])
    held_out = np.array([[True], [True], [False], [False]])
    assert consensus_class(predictions, held_out, [0], 3).tolist() == [1]
    assert consensus_class(predictions, held_out, [2], 3).tolist() == [2]
    np.testing.assert_array_equal(consensus_consistency(predictions, held_out, [1]), [0.5])
    np.testing.assert_array_equal(consistency_score(predictions, held_out, [2]), [0.5])


def test_three_way_tie_and_consensus_from_votes():
    votes = np.array([[2, 2, 2, 1], [2, 2, 2, 1], [0, 0, 0, 0], [0, 0, 5, 0]])
    assert consensus_from_votes(votes, [1, 3, 2, 0]).tolist() == [1, 0, -1, 2]
    np.testing.assert_array_equal(
        held_out_votes([[0, 1], [0, 2], [3, 2]], [[True, True], [True, False], [False, True]], 4),
        [[2, 0, 0, 0], [0, 1, 1, 0]],
    )


# --- hypothesis properties ---------------------------------------------------------------------

ensembles = st.tuples(
    st.integers(1, 9),
    st.integers(1, 30),
    st.integers(1, 5),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)


def draw(shape):
    r, n, n_classes, p_held_out, seed = shape
    rng = np.random.default_rng(seed)
    predictions = rng.integers(0, n_classes, (r, n))
    held_out = rng.random((r, n)) < p_held_out
    labels = rng.integers(0, n_classes, n)
    return predictions, held_out, labels, n_classes, rng


def all_metrics(predictions, held_out, labels, n_classes, values):
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    return (
        consistency_score(predictions, held_out, labels),
        consensus,
        consensus_consistency(predictions, held_out, consensus),
        *split_means(values, held_out),
    )


@settings(max_examples=150, deadline=None)
@given(ensembles)
def test_matches_loop_property(shape):
    predictions, held_out, labels, n_classes, _ = draw(shape)
    consistency, consensus, star = loop_metrics(predictions, held_out, labels, n_classes)
    np.testing.assert_array_equal(consistency_score(predictions, held_out, labels), consistency)
    got = consensus_class(predictions, held_out, labels, n_classes)
    np.testing.assert_array_equal(got, consensus)
    np.testing.assert_array_equal(consensus_consistency(predictions, held_out, got), star)


@settings(max_examples=100, deadline=None)
@given(ensembles)
def test_model_order_does_not_matter(shape):
    predictions, held_out, labels, n_classes, rng = draw(shape)
    values = rng.integers(0, 10, predictions.shape).astype(float)
    order = rng.permutation(predictions.shape[0])
    for got, want in zip(
        all_metrics(predictions[order], held_out[order], labels, n_classes, values[order]),
        all_metrics(predictions, held_out, labels, n_classes, values),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(ensembles)
def test_relabelling_classes(shape):
    predictions, held_out, labels, n_classes, rng = draw(shape)
    perm = rng.permutation(n_classes)  # class c becomes perm[c]
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    relabelled = consensus_class(perm[predictions], held_out, perm[labels], n_classes)
    # Eq. 1 and Eq. 2 are invariant (every tied class has the same share, so C* is too) ...
    np.testing.assert_array_equal(
        consistency_score(perm[predictions], held_out, perm[labels]),
        consistency_score(predictions, held_out, labels),
    )
    np.testing.assert_array_equal(
        consensus_consistency(perm[predictions], held_out, relabelled),
        consensus_consistency(predictions, held_out, consensus),
    )
    # ... and the consensus follows the relabelling, except where "smallest index" broke a tie
    votes = held_out_votes(predictions, held_out, n_classes)
    tied = votes == votes.max(axis=1, keepdims=True)
    index_tie = (tied.sum(axis=1) > 1) & ~tied[np.arange(len(labels)), labels]
    seen = held_out.any(axis=0)
    keep = seen & ~index_tie
    np.testing.assert_array_equal(relabelled[keep], perm[consensus[keep]])
    assert (relabelled[~seen] == -1).all()


@settings(max_examples=150, deadline=None)
@given(ensembles)
def test_bounds(shape):
    predictions, held_out, labels, n_classes, _ = draw(shape)
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    star = consensus_consistency(predictions, held_out, consensus)
    consistency = consistency_score(predictions, held_out, labels)
    seen = held_out.any(axis=0)
    assert (
        np.isnan(consistency[~seen]).all()
        and np.isnan(star[~seen]).all()
        and (consensus[~seen] == -1).all()
    )
    assert ((0 <= consistency[seen]) & (consistency[seen] <= 1)).all()
    assert ((0 <= consensus[seen]) & (consensus[seen] < n_classes)).all()
    # the consensus is a plurality: at least 1 / (distinct classes voted for) >= 1 / n_classes ...
    distinct = np.array([len(set(predictions[held_out[:, i], i])) for i in range(len(labels))])
    assert (star[seen] * distinct[seen] >= 1 - 1e-12).all() and (star[seen] <= 1).all()
    assert (star[seen] >= 1 / n_classes - 1e-12).all()
    # ... its share is the largest, so C* >= Ĉ, with equality exactly when the consensus is the
    # label
    assert (star[seen] >= consistency[seen]).all()
    np.testing.assert_array_equal((star == consistency)[seen], (consensus == labels)[seen])


@settings(max_examples=100, deadline=None)
@given(ensembles)
def test_split_means_properties(shape):
    predictions, held_out, labels, n_classes, rng = draw(shape)
    values = rng.integers(0, 9, predictions.shape)
    val, train = split_means(values, held_out)
    n_val = held_out.sum(axis=0)
    n_train = held_out.shape[0] - n_val
    # both within the range of the values; weighted together they give the overall mean
    for mean, count in ((val, n_val), (train, n_train)):
        assert np.isnan(mean[count == 0]).all()
        assert (
            (mean[count > 0] >= values.min(axis=0)[count > 0] - 1e-12)
            & (mean[count > 0] <= values.max(axis=0)[count > 0] + 1e-12)
        ).all()
    total = np.nan_to_num(val) * n_val + np.nan_to_num(train) * n_train
    np.testing.assert_allclose(total / held_out.shape[0], values.mean(axis=0), atol=1e-9)
    # constant values give that constant wherever defined
    val_c, train_c = split_means(np.full(values.shape, 3.0), held_out)
    assert (val_c[n_val > 0] == 3).all() and (train_c[n_train > 0] == 3).all()


def test_split_means_nan_stays_in_its_split():
    values = np.array([[np.nan, 1.0], [2.0, 3.0]])
    held_out = np.array([[True, True], [False, False]])
    val, train = split_means(values, held_out)
    assert np.isnan(val[0]) and train.tolist() == [2.0, 3.0] and val[1] == 1.0


histories = st.tuples(
    st.integers(1, 20), st.integers(1, 30), st.integers(1, 4), st.integers(0, 2**32 - 1)
)


@settings(max_examples=150, deadline=None)
@given(histories)
def test_iteration_learned_properties(shape):
    steps, n, n_classes, seed = shape
    history = np.random.default_rng(seed).integers(0, n_classes, (steps, n))
    got = iteration_learned(history)
    assert ((0 <= got) & (got <= steps - 1)).all()
    np.testing.assert_array_equal(got, prediction_depth(history, history[-1]))
    np.testing.assert_array_equal(got, loop_iteration_learned(history))
    # from the iteration learned on, every prediction is the final one; just before it, one is not
    t = np.arange(steps)[:, None]
    assert ((history == history[-1]) | (t < got)).all()
    before = got > 0
    assert (history[got[before] - 1, np.flatnonzero(before)] != history[-1, before]).all()
    # a history constant in time gives 0; relabelling classes changes nothing
    assert (iteration_learned(np.repeat(history[-1:], steps, axis=0)) == 0).all()
    perm = np.random.default_rng(seed).permutation(n_classes)
    np.testing.assert_array_equal(iteration_learned(perm[history]), got)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=50), st.floats(0.01, 1.0))
def test_rescale_properties(iteration, q):
    iteration = np.array(iteration)
    rescaled = rescale_iteration(iteration, q)
    assert (rescaled[iteration == 0] == 0).all() and (rescaled >= 0).all()
    scale = np.quantile(iteration, q)
    if scale > 0:
        # order-preserving, and the fraction of points above 1 is at most 1 - q (up to one point)
        assert (np.diff(rescaled[np.argsort(iteration, kind="stable")]) >= 0).all()
        assert np.mean(rescaled > 1 + 1e-12) <= 1 - q + 1 / len(iteration)
        # scale-free: multiplying every iteration (checkpoint -> step) changes nothing
        np.testing.assert_allclose(rescale_iteration(7 * iteration, q), rescaled, rtol=1e-12)
    else:
        assert (rescaled == 0).all()


def test_accepts_tensors_and_lists():
    predictions = torch.tensor([[0, 1], [1, 1]])
    held_out = torch.tensor([[True, True], [True, False]])
    assert consistency_score(predictions, held_out, torch.tensor([0, 1])).tolist() == [0.5, 1.0]
    assert consensus_class(predictions.tolist(), held_out.tolist(), [1, 0], 2).tolist() == [1, 1]


def loop_votes(predictions, held_out, n_classes):
    r, n = predictions.shape
    votes = np.zeros((n, n_classes), dtype=np.int64)
    for m in range(r):
        for i in range(n):
            if held_out[m, i]:
                votes[i, predictions[m, i]] += 1
    return votes


@pytest.mark.parametrize("r, n, n_classes", CASES)
def test_held_out_votes_and_consensus_from_votes_match_loops(r, n, n_classes):
    predictions, held_out, labels = make_ensemble(r, n, n_classes, seed=5)
    votes = held_out_votes(predictions, held_out, n_classes)
    assert votes.dtype == np.int64 and votes.shape == (n, n_classes)
    np.testing.assert_array_equal(votes, loop_votes(predictions, held_out, n_classes))
    np.testing.assert_array_equal(votes.sum(axis=1), held_out.sum(axis=0))
    _, consensus, _ = loop_metrics(predictions, held_out, labels, n_classes)
    np.testing.assert_array_equal(consensus_from_votes(votes, labels), consensus)


# --- summaries of one network ------------------------------------------------------------------


def test_probe_accuracy_and_softmax_disagreement_match_loops(rng):
    probes, labels, network = (
        rng.integers(0, 3, (6, 80)),
        rng.integers(0, 3, 80),
        rng.integers(0, 3, 80),
    )
    expected = [sum(probes[p, i] == labels[i] for i in range(80)) / 80 for p in range(6)]
    np.testing.assert_allclose(probe_accuracy(probes, labels), expected)
    assert softmax_disagreement(probes, network) == pytest.approx(
        sum(probes[-1, i] != network[i] for i in range(80)) / 80
    )
    # the share of points whose softmax probe disagrees is the share pinned to the last depth
    depth = prediction_depth(probes, network)
    assert softmax_disagreement(probes, network) <= np.mean(depth == 5)


def test_probe_accuracy_known_values_and_bad_shapes():
    probes = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]])
    np.testing.assert_allclose(probe_accuracy(probes, [1, 1, 1, 1]), [0.5, 0.75, 0.75])
    assert softmax_disagreement(probes, np.array([1, 1, 0, 0])) == 0.25
    with pytest.raises(ValueError, match="shapes"):
        probe_accuracy(probes, [1, 1])
    with pytest.raises(ValueError, match="shapes"):
        probe_accuracy(probes[0], probes[0])


def test_rescale_depth():
    np.testing.assert_allclose(rescale_depth(np.array([0, 7, 14]), 15), [0, 0.5, 1])
    assert rescale_depth([3], 4).dtype == np.float64
    with pytest.raises(ValueError, match="n_probes must be at least 2"):
        rescale_depth([0], 1)


# --- correlations ------------------------------------------------------------------------------


def with_nans(rng, n, share=0.1):
    x, y = rng.normal(size=n), rng.normal(size=n)
    y = 0.6 * x + y
    x[rng.random(n) < share] = np.nan
    y[rng.random(n) < share] = np.inf
    return x, y


@pytest.mark.parametrize("n", [3, 10, 200])
def test_pearson_matches_numpy_on_the_finite_pairs(rng, n):
    x, y = with_nans(rng, n + 5)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() >= 2:
        assert pearson(x, y) == pytest.approx(np.corrcoef(x[keep], y[keep])[0, 1], abs=1e-12)
    assert pearson([1, 2, 3, np.nan], [2, 4, 7, 1]) == pytest.approx(
        np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1]
    )


def test_pearson_undefined_cases_give_nan():
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # constant x
    assert math.isnan(pearson([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))  # constant y
    assert math.isnan(pearson([1.0, np.nan], [1.0, 2.0]))  # a single finite pair
    assert math.isnan(pearson([np.nan, np.nan], [1.0, 2.0]))
    assert pearson([0, 1], [1, 0]) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", range(4))
def test_rank_correlation_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 120).astype(float)  # many ties: average ranks
    y = x + rng.integers(0, 4, 120)
    x[:7] = np.nan
    y[5:9] = np.nan
    keep = np.isfinite(x) & np.isfinite(y)
    expected = scipy.stats.spearmanr(x[keep], y[keep]).statistic
    assert rank_correlation(x, y) == pytest.approx(expected, abs=1e-12)
    assert rank_correlation(x[keep], np.exp(y[keep])) == pytest.approx(
        expected, abs=1e-12
    )  # monotone: same ranks


def test_rank_correlation_undefined_cases():
    assert rank_correlation([1, 2, 3, 4], [1, 4, 9, 16]) == 1.0
    assert math.isnan(rank_correlation([1, 2], [1, 2]))  # fewer than 3 pairs
    assert math.isnan(rank_correlation([1, 2, np.nan, 4], [1, 2, 3, np.nan]))
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))


def loop_correlation_matrix(depths_by_group):
    names = list(depths_by_group)
    matrix = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            runs_a, runs_b = depths_by_group[a], depths_by_group[b]
            values = []
            for s, x in enumerate(runs_a):
                for t, y in enumerate(runs_b):
                    if i == j and s >= t:
                        continue  # the diagonal: pairs of different runs, each pair once
                    values.append(np.corrcoef(x, y)[0, 1])
            if values:
                matrix[i, j] = np.mean(values)
    return names, matrix


@pytest.mark.parametrize("sizes", [(2, 1), (3, 2, 1), (1, 1), (4,)])
def test_depth_correlation_matrix_matches_loop(rng, sizes):
    base = rng.integers(0, 9, 300).astype(float)
    groups = {
        f"arch{g}": [base + rng.normal(0, 1 + g, 300) for _ in range(size)]
        for g, size in enumerate(sizes)
    }
    names, matrix = depth_correlation_matrix(groups)
    want_names, want = loop_correlation_matrix(groups)
    assert names == want_names
    np.testing.assert_allclose(matrix, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(matrix, matrix.T, rtol=1e-12)  # symmetric
    assert all(
        np.isnan(matrix[g, g]) == (size == 1) for g, size in enumerate(sizes)
    )  # one run: no seed pair


def test_depth_correlation_matrix_bad_inputs():
    with pytest.raises(ValueError, match="same points"):
        depth_correlation_matrix({"a": [np.zeros(3)], "b": [np.zeros(4)]})
    with pytest.raises(ValueError, match="must be 1-D"):
        depth_correlation_matrix({"a": [np.zeros((3, 2))]})


# --- the lower envelope ------------------------------------------------------------------------


def loop_lower_envelope(x, y, n_bins, quantile, min_count):
    """Bins, edges and the least-squares line written out."""
    keep = [i for i in range(len(x)) if np.isfinite(x[i]) and np.isfinite(y[i])]
    x, y = x[keep], y[keep]
    low, width = x.min(), (x.max() - x.min()) / n_bins
    members = [[] for _ in range(n_bins)]
    for xi, yi in zip(x, y, strict=True):
        b = n_bins - 1 if xi >= x.max() else int(np.floor((xi - low) / width)) if width > 0 else 0
        members[min(max(b, 0), n_bins - 1)].append(yi)
    centres = [low + (b + 0.5) * width for b in range(n_bins) if len(members[b]) >= min_count]
    edges = [np.quantile(m, quantile) for m in members if len(m) >= min_count]
    if len(centres) < 2:
        return math.nan, math.nan, centres
    c, e = np.array(centres), np.array(edges)
    slope = ((c - c.mean()) * (e - e.mean())).sum() / ((c - c.mean()) ** 2).sum()
    return slope, e.mean() - slope * c.mean(), centres


@pytest.mark.parametrize("slope, intercept", [(-0.8, 1.0), (0.5, -0.2), (0.0, 0.3)])
def test_lower_envelope_recovers_a_known_lower_line(rng, slope, intercept):
    x = rng.uniform(0, 1, 40_000)
    y = intercept + slope * x + rng.exponential(0.3, len(x))  # every point on or above the line
    fit = lower_envelope(x, y, n_bins=40, quantile=0.0)
    # bin edges lie on the line shifted by at most half a bin: the slope is exact, the intercept
    # nearly
    assert fit["slope"] == pytest.approx(slope, abs=0.02)
    assert fit["intercept"] == pytest.approx(intercept, abs=abs(slope) / 80 + 0.01)
    assert len(fit["centres"]) == len(fit["edges"]) == 40
    assert fit["violations"] < 0.02


@pytest.mark.parametrize("quantile, min_count", [(0.0, 20), (0.02, 20), (0.1, 5), (0.5, 48)])
def test_lower_envelope_matches_loop(rng, quantile, min_count):
    x = np.concatenate([rng.uniform(0, 1, 600), rng.uniform(0.9, 1.0, 10)])
    y = 1 - x + rng.exponential(0.2, len(x))
    x[:5] = np.nan
    fit = lower_envelope(x, y, n_bins=12, quantile=quantile, min_count=min_count)
    slope, intercept, centres = loop_lower_envelope(x, y, 12, quantile, min_count)
    np.testing.assert_allclose(fit["centres"], centres, rtol=1e-12)
    assert fit["slope"] == pytest.approx(slope, rel=1e-9) and fit["intercept"] == pytest.approx(
        intercept, rel=1e-9
    )
    keep = np.isfinite(x) & np.isfinite(y)
    below = np.mean(y[keep] < intercept + slope * x[keep] - 1e-9)
    assert fit["violations"] == pytest.approx(below)


def test_lower_envelope_ignores_sparse_bins(rng):
    # ten bins over [0, 1]; the bin [0.5, 0.6) holds only 3 points, far below the others
    dense = np.concatenate(
        [rng.uniform(b / 10, (b + 1) / 10, 30) for b in range(10) if b != 5] + [[0.0, 1.0]]
    )
    x = np.concatenate([dense, [0.52, 0.55, 0.58]])
    y = np.concatenate([1 - dense, [-50.0, -50.0, -50.0]])
    fit = lower_envelope(x, y, n_bins=10, quantile=0.0, min_count=20)
    np.testing.assert_allclose(fit["centres"], [b / 10 + 0.05 for b in range(10) if b != 5])
    assert fit["slope"] == pytest.approx(-1.0, abs=0.05) and fit["intercept"] == pytest.approx(
        0.95, abs=0.06
    )
    assert fit["violations"] == pytest.approx(3 / len(x))  # the three outliers lie below the line
    counted = lower_envelope(x, y, n_bins=10, quantile=0.0, min_count=3)
    assert 0.55 in np.round(counted["centres"], 12) and counted["edges"].min() == -50.0
    assert counted["slope"] != pytest.approx(fit["slope"], abs=0.05)


def test_lower_envelope_with_fewer_than_two_bins_is_nan():
    one_bin = lower_envelope(
        np.r_[np.zeros(50), np.ones(3)], np.arange(53.0), n_bins=10, min_count=20
    )
    assert len(one_bin["centres"]) == 1
    constant_x = lower_envelope(np.full(100, 0.3), np.arange(100.0))
    for fit in (
        one_bin,
        constant_x,
        lower_envelope(np.arange(100.0), np.arange(100.0), min_count=101),
    ):
        assert (
            math.isnan(fit["slope"])
            and math.isnan(fit["intercept"])
            and math.isnan(fit["violations"])
        )
    # no finite pair at all is the extreme case of "fewer than 2 bins": NaN, not a numpy reduction
    # error
    empty = lower_envelope([np.nan, 1.0, 2.0], [1.0, np.nan, np.inf])
    assert math.isnan(empty["slope"]) and len(empty["centres"]) == 0


# --- means by depth ----------------------------------------------------------------------------


def loop_mean_by_depth(depth, values, n_probes):
    mean, count = np.full(n_probes, np.nan), np.zeros(n_probes, dtype=np.int64)
    for d in range(n_probes):
        chosen = [v for dd, v in zip(depth, values, strict=True) if dd == d and np.isfinite(v)]
        count[d] = len(chosen)
        if chosen:
            mean[d] = sum(chosen) / len(chosen)
    return mean, count


@pytest.mark.parametrize("n_probes", [2, 9, 15])
def test_mean_by_depth_matches_loop_and_skips_nan(rng, n_probes):
    depth = rng.integers(0, n_probes - 1, 500)  # the last depth never occurs: NaN mean, count 0
    values = rng.normal(size=500)
    values[rng.random(500) < 0.2] = np.nan
    mean, count = mean_by_depth(depth, values, n_probes)
    want_mean, want_count = loop_mean_by_depth(depth, values, n_probes)
    assert mean.shape == count.shape == (n_probes,) and count.dtype == np.int64
    np.testing.assert_array_equal(count, want_count)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
    assert np.isnan(mean[-1]) and count[-1] == 0
    assert count.sum() == np.isfinite(values).sum()


def test_accuracy_by_depth_matches_loop(rng):
    depth = rng.integers(0, 11, 400)
    correct = rng.random(400) < 1 - depth / 12  # deeper points are less often right
    accuracy, count = accuracy_by_depth(depth, correct, 11)
    want_accuracy, want_count = loop_mean_by_depth(depth, correct.astype(float), 11)
    np.testing.assert_allclose(accuracy, want_accuracy, rtol=1e-12)
    np.testing.assert_array_equal(count, want_count)
    assert ((accuracy >= 0) & (accuracy <= 1)).all()
    accuracy_list, _ = accuracy_by_depth(depth.tolist(), correct.astype(int).tolist(), 11)
    np.testing.assert_allclose(accuracy_list, accuracy)


def test_means_by_depth_known_values():
    mean, count = mean_by_depth([0, 0, 2], [1.0, 0.0, 1.0], 3)
    assert np.isnan(mean[1]) and mean[[0, 2]].tolist() == [0.5, 1.0] and count.tolist() == [2, 0, 1]
    mean, count = mean_by_depth([0, 1, 1], [np.nan, 2.0, 4.0], 2)
    assert np.isnan(mean[0]) and mean[1] == 3.0 and count.tolist() == [0, 2]


# --- uncertainty -------------------------------------------------------------------------------


def wilson_by_formula(successes, trials, confidence=0.95):
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2))
    return centre - half, centre + half


@pytest.mark.parametrize(
    "successes, trials", [(1, 10), (5, 10), (8, 10), (81, 263), (499, 1000), (3, 4)]
)
def test_wilson_interval_known_values(successes, trials):
    low, high = wilson_interval(successes, trials)
    want_low, want_high = wilson_by_formula(successes, trials)
    assert low == pytest.approx(want_low, abs=1e-12) and high == pytest.approx(want_high, abs=1e-12)
    assert [round(v, 3) for v in wilson_interval(8, 10)] == [0.49, 0.943]
    # Wilson (1927) / Newcombe (1998): 81 of 263 -> (0.2553, 0.3662)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)


@pytest.mark.parametrize("trials", [1, 7, 100, 10_000])
def test_wilson_interval_touches_the_bounds_at_0_and_n(trials):
    low, high = wilson_interval(0, trials)
    assert low == 0.0 and 0 < high < 1
    low, high = wilson_interval(trials, trials)
    assert high == 1.0 and 0 < low < 1
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.integers(1, 200), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_interval_properties(successes, trials, confidence):
    successes = min(successes, trials)
    low, high = wilson_interval(successes, trials, confidence)
    assert 0 <= low <= successes / trials <= high <= 1
    wider_low, wider_high = wilson_interval(successes, trials, 0.999)
    assert wider_low <= low + 1e-12 and wider_high >= high - 1e-12
    flipped = wilson_interval(trials - successes, trials, confidence)  # symmetric under p -> 1 - p
    assert flipped == pytest.approx((1 - high, 1 - low), abs=1e-12)


@pytest.mark.parametrize("r", [-0.9, -0.3, 0.0, 0.5, 0.95])
def test_pearson_interval_contains_r_and_narrows_with_n(r):
    widths = []
    for n in (4, 10, 100, 10_000):
        low, high = pearson_interval(r, n)
        assert -1 <= low < r < high <= 1
        z = NormalDist().inv_cdf(0.975) / math.sqrt(n - 3)
        assert (low, high) == pytest.approx(
            (math.tanh(math.atanh(r) - z), math.tanh(math.atanh(r) + z)), abs=1e-12
        )
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True)
    assert [round(v, 3) for v in pearson_interval(0.5, 100)] == [
        0.337,
        0.634,
    ]  # by hand: tanh(atanh(0.5) ± 1.96 / sqrt(97))
    assert pearson_interval(r, 100, confidence=0.99)[1] > pearson_interval(r, 100)[1]


def test_pearson_interval_undefined_and_extreme_cases():
    for n in (0, 1, 3):
        assert all(math.isnan(v) for v in pearson_interval(0.5, n))
    assert all(math.isnan(v) for v in pearson_interval(float("nan"), 100))
    # a perfect correlation: the interval is degenerate, and it must still contain r
    for r in (1.0, -1.0):
        low, high = pearson_interval(r, 50)
        assert low <= r <= high


def test_bootstrap_interval_covers_the_mean_of_a_large_sample(rng):
    x = rng.normal(3.0, 2.0, 5000)
    low, high = bootstrap_interval(np.mean, x, n_boot=300, seed=1)
    assert low < x.mean() < high and low < 3.0 < high
    se = x.std() / np.sqrt(len(x))
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.2)  # the normal-theory width
    assert bootstrap_interval(np.mean, x, n_boot=300, seed=1) == (low, high)  # seeded
    assert bootstrap_interval(np.mean, x, n_boot=300, seed=2) != (low, high)
    # several arrays are resampled with the same rows
    y = 2 * x + 1
    low2, high2 = bootstrap_interval(lambda a, b: pearson(a, b), x, y, n_boot=50)
    assert low2 == pytest.approx(1.0) and high2 == pytest.approx(1.0)


def test_bootstrap_interval_resamples_whole_groups(rng):
    # 40 groups of 25 identical rows: rows are not independent, groups are
    group_values = rng.normal(size=40)
    groups = np.repeat(np.arange(40), 25)
    values = group_values[groups]
    sizes = []

    def mean_checking_groups(v, g):
        counts = np.bincount(g, minlength=40)
        sizes.append(set(counts[counts > 0].tolist()))
        return v.mean()

    low, high = bootstrap_interval(mean_checking_groups, values, groups, n_boot=200, groups=groups)
    assert all(
        size <= set(range(0, 1001, 25)) for size in sizes
    )  # groups come whole (k copies of 25 rows)
    row_low, row_high = bootstrap_interval(np.mean, values, n_boot=200)
    assert (high - low) > 3 * (row_high - row_low)  # about sqrt(25) = 5 times wider
    se = group_values.std() / np.sqrt(40)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.3)


def test_bootstrap_interval_bad_inputs():
    with pytest.raises(ValueError, match="same length|same number"):
        bootstrap_interval(
            lambda a, b: a.mean() - b.mean(), np.arange(10.0), np.arange(20.0), n_boot=10
        )
    with pytest.raises(ValueError, match="groups"):
        bootstrap_interval(np.mean, np.arange(10.0), n_boot=10, groups=np.arange(5))
    with pytest.raises(ValueError, match="empty"):
        bootstrap_interval(np.mean, np.zeros(0), n_boot=10)


# --- docstrings and bad inputs -----------------------------------------------------------------


P, H, L = np.zeros((2, 3), int), np.ones((2, 3), bool), [0, 1, 0]


@pytest.mark.parametrize(
    "call, error, match",
    [
        # prediction_depth
        (
            lambda: prediction_depth(np.zeros(3, int), np.zeros(3, int)),
            ValueError,
            "probe_predictions must be 2-D",
        ),
        (
            lambda: prediction_depth(np.zeros((2, 3), int), np.zeros((3, 1), int)),
            ValueError,
            "final_prediction must be 1-D",
        ),
        (
            lambda: prediction_depth(np.zeros((2, 3), int), np.zeros(4, int)),
            ValueError,
            "final_prediction has 4",
        ),
        (lambda: prediction_depth(np.zeros((2, 0), int), np.zeros(0, int)), ValueError, "empty"),
        (
            lambda: prediction_depth(np.full((2, 3), 0.5), np.zeros(3, int)),
            TypeError,
            "probe_predictions must hold integer",
        ),
        (
            lambda: prediction_depth("abc", np.zeros(3, int)),
            TypeError,
            "probe_predictions must be an array",
        ),
        (
            lambda: prediction_depth(np.full((2, 3), -1), np.zeros(3, int)),
            ValueError,
            "non-negative",
        ),
        # predictions
        (lambda: consistency_score(None, H, L), TypeError, "predictions must be an array"),
        (lambda: consistency_score(np.zeros(3, int), H, L), ValueError, r"predictions must be 2-D"),
        (
            lambda: consistency_score(np.zeros((0, 3), int), np.ones((0, 3), bool), L),
            ValueError,
            "predictions is empty",
        ),
        (
            lambda: consistency_score(np.zeros((2, 0), int), np.ones((2, 0), bool), []),
            ValueError,
            "predictions is empty",
        ),
        (
            lambda: consistency_score(np.full((2, 3), 0.5), H, L),
            TypeError,
            "predictions must hold integer",
        ),
        (
            lambda: consistency_score(np.full((2, 3), -1), H, L),
            ValueError,
            "predictions must be non-negative",
        ),
        (
            lambda: consensus_class(np.full((2, 3), 4), H, L, 3),
            ValueError,
            "predictions contains class 4 but n_classes=3",
        ),
        # held_out
        (
            lambda: consistency_score(P, np.ones((2, 3), int), L),
            TypeError,
            "held_out must be boolean",
        ),
        (
            lambda: consistency_score(P, np.ones((2, 4), bool), L),
            ValueError,
            r"held_out has shape "
            r"\(2, 4\)",
        ),
        (lambda: consistency_score(P, np.ones((3, 3), bool), L), ValueError, "held_out has shape"),
        (
            lambda: consensus_consistency(P, np.ones((2, 3), float), L),
            TypeError,
            "held_out must be boolean",
        ),
        (lambda: held_out_votes(P, np.ones((2, 2), bool), 2), ValueError, "held_out has shape"),
        # labels
        (
            lambda: consistency_score(P, H, [0, 0]),
            ValueError,
            "labels has 2 entries but predictions has 3",
        ),
        (lambda: consistency_score(P, H, [[0, 0, 0]]), ValueError, "labels must be 1-D"),
        (lambda: consistency_score(P, H, []), ValueError, "labels is empty"),
        (lambda: consistency_score(P, H, [0, -1, 0]), ValueError, "labels must be non-negative"),
        (lambda: consistency_score(P, H, [0.5, 1, 0]), TypeError, "labels must hold integer"),
        (lambda: consensus_class(P, H, [0, 5, 0], 3), ValueError, "labels contains class 5"),
        (lambda: consensus_class(P, H, [0, 1], 3), ValueError, "labels has 2 entries"),
        # n_classes
        (lambda: consensus_class(P, H, L, 0), ValueError, "n_classes must be >= 1"),
        (lambda: consensus_class(P, H, L, 2.5), TypeError, "n_classes must be an integer"),
        (lambda: held_out_votes(P, H, True), TypeError, "n_classes must be an integer"),
        # consensus
        (
            lambda: consensus_consistency(P, H, [0, 0]),
            ValueError,
            r"consensus must have shape "
            r"\(3,\)",
        ),
        (
            lambda: consensus_consistency(P, H, [0.5, 1.0, 0.0]),
            TypeError,
            "consensus must hold integer",
        ),
        (
            lambda: consensus_consistency(P, H, [0, -2, 0]),
            ValueError,
            "consensus must be class indices or -1",
        ),
        # votes
        (
            lambda: consensus_from_votes(np.zeros(3, int), [0]),
            ValueError,
            "votes must be a non-empty",
        ),
        (
            lambda: consensus_from_votes(np.zeros((2, 3)), [0, 0]),
            ValueError,
            "votes must be .* counts",
        ),
        (
            lambda: consensus_from_votes(-np.ones((2, 3), int), [0, 0]),
            ValueError,
            "votes must be .* counts",
        ),
        (
            lambda: consensus_from_votes(np.ones((2, 3), int), [0, 3]),
            ValueError,
            "labels contains class 3",
        ),
        (
            lambda: consensus_from_votes(np.ones((2, 3), int), [0]),
            ValueError,
            "labels has 1 entries but votes",
        ),
        # split_means
        (
            lambda: split_means(np.zeros((2, 3)), np.ones((2, 2), bool)),
            ValueError,
            r"held_out has shape \(2, 2\) but values",
        ),
        (
            lambda: split_means(np.zeros((2, 3)), np.ones((2, 3), int)),
            TypeError,
            "held_out must be boolean",
        ),
        (lambda: split_means(np.zeros(3), np.ones(3, bool)), ValueError, "values must be 2-D"),
        (
            lambda: split_means(np.zeros((0, 3)), np.ones((0, 3), bool)),
            ValueError,
            "values is empty",
        ),
        (lambda: split_means(np.full((2, 3), "a"), H), TypeError, "values must hold numbers"),
        # iteration_learned
        (lambda: iteration_learned(np.zeros(4, int)), ValueError, "prediction_history must be 2-D"),
        (
            lambda: iteration_learned(np.zeros((0, 4), int)),
            ValueError,
            "prediction_history is empty",
        ),
        (
            lambda: iteration_learned(np.full((3, 4), 0.5)),
            TypeError,
            "prediction_history must hold integer",
        ),
        (lambda: iteration_learned("abc"), TypeError, "prediction_history must be an array"),
        # rescale_iteration
        (lambda: rescale_iteration([1, 2], quantile=0), ValueError, "quantile must be in"),
        (lambda: rescale_iteration([1, 2], quantile=1.5), ValueError, "quantile must be in"),
        (lambda: rescale_iteration([1, 2], quantile="0.9"), TypeError, "quantile must be a number"),
        (lambda: rescale_iteration([1, 2], quantile=True), TypeError, "quantile must be a number"),
        (lambda: rescale_iteration([], 0.95), ValueError, "iteration is empty"),
        (lambda: rescale_iteration([[1, 2]]), ValueError, "iteration must be 1-D"),
        (lambda: rescale_iteration([1, -2]), ValueError, "iteration must be non-negative"),
        (lambda: rescale_iteration([1, np.nan]), ValueError, "iteration contains NaN"),
        # correlations
        (lambda: pearson([1, 2, 3], [1, 2]), ValueError, "x and y must have the same shape"),
        (lambda: pearson([], []), ValueError, "x is empty"),
        (lambda: pearson(["a", "b"], [1, 2]), TypeError, "x must hold numbers"),
        (lambda: rank_correlation([[1, 2]], [[1, 2]]), ValueError, "x must be 1-D"),
        (lambda: lower_envelope([1, 2, 3], [1, 2]), ValueError, "same shape"),
        # means by depth
        (lambda: mean_by_depth([0, 1], [1.0], 3), ValueError, r"values has shape \(1,\) but depth"),
        (
            lambda: mean_by_depth([0, 3], [1.0, 2.0], 3),
            ValueError,
            "depth contains class 3 but n_classes=3",
        ),
        (lambda: mean_by_depth([0, -1], [1.0, 2.0], 3), ValueError, "depth must be non-negative"),
        (lambda: accuracy_by_depth([0, 1], [True], 3), ValueError, "values has shape"),
        # intervals
        (lambda: wilson_interval(5, 3), ValueError, "successes must be in"),
        (lambda: wilson_interval(-1, 3), ValueError, "successes must be in"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bootstrap_interval_of_an_undefined_statistic_is_nan_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = bootstrap_interval(lambda x: float("nan"), np.arange(5.0), n_boot=20)
    assert np.isnan(low) and np.isnan(high)
