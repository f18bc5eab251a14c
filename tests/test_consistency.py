"""Ensemble metrics (Eq. 1, consensus, Eq. 2, PD_val / PD_train, iteration learned) against
literal loop implementations, plus hypothesis properties and bad inputs."""

import doctest

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pdlib.consistency
from pdlib.consistency import (
    EnsembleAccumulator,
    consensus_class,
    consensus_consistency,
    consensus_from_votes,
    consistency_score,
    held_out_votes,
    iteration_learned,
    rescale_iteration,
    split_means,
)
from pdlib.depth import prediction_depth

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
    iteration = np.r_[0, rng.integers(1, 30, 100)]  # one point at initialisation; the quantile stays > 0
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
    assert consensus_class(predictions, held_out, [2, 2, 3], 4).tolist() == [2, 2, 3]  # label among the tied
    assert consensus_class(predictions, held_out, [1, 3, 0], 4).tolist() == [1, 3, 0]  # label among the tied
    assert consensus_class(predictions, held_out, [0, 0, 1], 4).tolist() == [1, 2, 0]  # not: smallest index
    assert consensus_class(predictions, held_out, [3, 1, 2], 4).tolist() == [1, 2, 0]  # not: smallest index


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
        [[2, 0, 0, 0], [0, 1, 1, 0]])


# --- hypothesis properties ---------------------------------------------------------------------

ensembles = st.tuples(st.integers(1, 9), st.integers(1, 30), st.integers(1, 5),
                      st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))


def draw(shape):
    r, n, n_classes, p_held_out, seed = shape
    rng = np.random.default_rng(seed)
    predictions = rng.integers(0, n_classes, (r, n))
    held_out = rng.random((r, n)) < p_held_out
    labels = rng.integers(0, n_classes, n)
    return predictions, held_out, labels, n_classes, rng


def all_metrics(predictions, held_out, labels, n_classes, values):
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    return (consistency_score(predictions, held_out, labels), consensus,
            consensus_consistency(predictions, held_out, consensus), *split_means(values, held_out))


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
    for got, want in zip(all_metrics(predictions[order], held_out[order], labels, n_classes, values[order]),
                         all_metrics(predictions, held_out, labels, n_classes, values)):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(ensembles)
def test_relabelling_classes(shape):
    predictions, held_out, labels, n_classes, rng = draw(shape)
    perm = rng.permutation(n_classes)  # class c becomes perm[c]
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    relabelled = consensus_class(perm[predictions], held_out, perm[labels], n_classes)
    # Eq. 1 and Eq. 2 are invariant (every tied class has the same share, so C* is too) ...
    np.testing.assert_array_equal(consistency_score(perm[predictions], held_out, perm[labels]),
                                  consistency_score(predictions, held_out, labels))
    np.testing.assert_array_equal(consensus_consistency(perm[predictions], held_out, relabelled),
                                  consensus_consistency(predictions, held_out, consensus))
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
    assert np.isnan(consistency[~seen]).all() and np.isnan(star[~seen]).all() and (consensus[~seen] == -1).all()
    assert ((0 <= consistency[seen]) & (consistency[seen] <= 1)).all()
    assert ((0 <= consensus[seen]) & (consensus[seen] < n_classes)).all()
    # the consensus is a plurality: at least 1 / (distinct classes voted for) >= 1 / n_classes ...
    distinct = np.array([len(set(predictions[held_out[:, i], i])) for i in range(len(labels))])
    assert (star[seen] * distinct[seen] >= 1 - 1e-12).all() and (star[seen] <= 1).all()
    assert (star[seen] >= 1 / n_classes - 1e-12).all()
    # ... its share is the largest, so C* >= Ĉ, with equality exactly when the consensus is the label
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
        assert ((mean[count > 0] >= values.min(axis=0)[count > 0] - 1e-12)
                & (mean[count > 0] <= values.max(axis=0)[count > 0] + 1e-12)).all()
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


histories = st.tuples(st.integers(1, 20), st.integers(1, 30), st.integers(1, 4), st.integers(0, 2**32 - 1))


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


# --- streaming accumulator ---------------------------------------------------------------------


def accumulate(predictions, held_out, n_classes, depth=None):
    acc = EnsembleAccumulator(predictions.shape[1], n_classes)
    for m in range(predictions.shape[0]):
        acc.add(predictions[m], held_out[m], None if depth is None else depth[m])
    return acc


def assert_accumulator_matches(predictions, held_out, labels, n_classes, depth):
    out = accumulate(predictions, held_out, n_classes, depth).result(labels)
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    np.testing.assert_array_equal(out["consistency"], consistency_score(predictions, held_out, labels))
    np.testing.assert_array_equal(out["consensus"], consensus)
    np.testing.assert_array_equal(out["consensus_consistency"], consensus_consistency(predictions, held_out, consensus))
    np.testing.assert_array_equal(out["n_held_out"], held_out.sum(axis=0))
    np.testing.assert_array_equal(out["n_trained"], (~held_out).sum(axis=0))
    val, train = split_means(depth, held_out)
    np.testing.assert_allclose(out["depth_val"], val, rtol=1e-12)
    np.testing.assert_allclose(out["depth_train"], train, rtol=1e-12)


@pytest.mark.parametrize("r, n, n_classes", CASES)
def test_accumulator_matches_batch(r, n, n_classes):
    predictions, held_out, labels = make_ensemble(r, n, n_classes, seed=3)
    depth = np.random.default_rng(4).integers(0, 11, (r, n))
    assert_accumulator_matches(predictions, held_out, labels, n_classes, depth)
    assert_accumulator_matches(predictions, held_out, labels, n_classes, depth + 0.25)


@settings(max_examples=100, deadline=None)
@given(ensembles)
def test_accumulator_matches_batch_property(shape):
    predictions, held_out, labels, n_classes, rng = draw(shape)
    assert_accumulator_matches(predictions, held_out, labels, n_classes, rng.normal(size=predictions.shape))


def test_accumulator_without_depth_and_state():
    acc = EnsembleAccumulator(3, 2)
    assert acc.votes.shape == (3, 2) and acc.n_models == 0
    acc.add(np.array([0, 1, 1]), np.array([True, False, True])).add([1, 1, 1], [True, True, False])
    out = acc.result([0, 1, 0])
    assert "depth_val" not in out and acc.n_models == 2
    assert acc.votes.tolist() == [[1, 1], [0, 1], [0, 1]]
    assert out["consistency"].tolist() == [0.5, 1.0, 0.0]
    assert out["consensus"].tolist() == [0, 1, 1] and out["consensus_consistency"].tolist() == [0.5, 1.0, 1.0]
    with pytest.raises(ValueError, match="no depth was added"):
        acc.depth_val


def test_accepts_tensors_and_lists():
    predictions = torch.tensor([[0, 1], [1, 1]])
    held_out = torch.tensor([[True, True], [True, False]])
    assert consistency_score(predictions, held_out, torch.tensor([0, 1])).tolist() == [0.5, 1.0]
    assert consensus_class(predictions.tolist(), held_out.tolist(), [1, 0], 2).tolist() == [1, 1]


def test_docstring_examples():
    result = doctest.testmod(pdlib.consistency, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --- bad inputs --------------------------------------------------------------------------------

P, H, L = np.zeros((2, 3), int), np.ones((2, 3), bool), [0, 1, 0]


@pytest.mark.parametrize(
    "call, error, match",
    [
        # predictions
        (lambda: consistency_score(None, H, L), TypeError, "predictions must be an array"),
        (lambda: consistency_score(np.zeros(3, int), H, L), ValueError, r"predictions must be 2-D"),
        (lambda: consistency_score(np.zeros((0, 3), int), np.ones((0, 3), bool), L),
         ValueError, "predictions is empty"),
        (lambda: consistency_score(np.zeros((2, 0), int), np.ones((2, 0), bool), []),
         ValueError, "predictions is empty"),
        (lambda: consistency_score(np.zeros((2, 3)), H, L), TypeError, "predictions must hold integer"),
        (lambda: consistency_score(np.full((2, 3), -1), H, L), ValueError, "predictions must be non-negative"),
        (lambda: consensus_class(np.full((2, 3), 4), H, L, 3),
         ValueError, "predictions contains class 4 but n_classes=3"),
        # held_out
        (lambda: consistency_score(P, np.ones((2, 3), int), L), TypeError, "held_out must be boolean"),
        (lambda: consistency_score(P, np.ones((2, 4), bool), L), ValueError, r"held_out has shape \(2, 4\)"),
        (lambda: consistency_score(P, np.ones((3, 3), bool), L), ValueError, "held_out has shape"),
        (lambda: consensus_consistency(P, np.ones((2, 3), float), L), TypeError, "held_out must be boolean"),
        # labels
        (lambda: consistency_score(P, H, [0, 0]), ValueError, "labels has 2 entries but there are 3 points"),
        (lambda: consistency_score(P, H, [[0, 0, 0]]), ValueError, "labels must be 1-D"),
        (lambda: consistency_score(P, H, []), ValueError, "labels is empty"),
        (lambda: consistency_score(P, H, [0, -1, 0]), ValueError, "labels must be non-negative"),
        (lambda: consistency_score(P, H, [0.5, 1, 0]), TypeError, "labels must hold integer"),
        (lambda: consensus_class(P, H, [0, 5, 0], 3), ValueError, "labels contains class 5"),
        (lambda: consensus_class(P, H, [0, 1], 3), ValueError, "labels has 2 entries"),
        # n_classes
        (lambda: consensus_class(P, H, L, 0), ValueError, "n_classes must be >= 1"),
        (lambda: consensus_class(P, H, L, 2.5), TypeError, "n_classes must be an integer"),
        # consensus
        (lambda: consensus_consistency(P, H, [0, 0]), ValueError, r"consensus must have shape \(3,\)"),
        (lambda: consensus_consistency(P, H, [0.0, 1.0, 0.0]), TypeError, "consensus must hold integer"),
        (lambda: consensus_consistency(P, H, [0, -2, 0]), ValueError, "consensus must be class indices or -1"),
        # votes
        (lambda: consensus_from_votes(np.zeros(3, int), [0]), ValueError, "votes must be a non-empty 2-D"),
        (lambda: consensus_from_votes(np.zeros((2, 3)), [0, 0]), TypeError, "votes must hold integer"),
        (lambda: consensus_from_votes(-np.ones((2, 3), int), [0, 0]), ValueError, "votes must be non-negative"),
        (lambda: consensus_from_votes(np.ones((2, 3), int), [0, 3]), ValueError, "labels contains class 3"),
        # split_means
        (lambda: split_means(np.zeros((2, 3)), np.ones((2, 2), bool)),
         ValueError, r"held_out has shape \(2, 2\) but values"),
        (lambda: split_means(np.zeros((2, 3)), np.ones((2, 3), int)), TypeError, "held_out must be boolean"),
        (lambda: split_means(np.zeros(3), np.ones(3, bool)), ValueError, "values must be 2-D"),
        (lambda: split_means(np.zeros((0, 3)), np.ones((0, 3), bool)), ValueError, "values is empty"),
        (lambda: split_means(np.full((2, 3), "a"), H), TypeError, "values must hold numbers"),
        # iteration_learned
        (lambda: iteration_learned(np.zeros(4, int)), ValueError, "prediction_history must be 2-D"),
        (lambda: iteration_learned(np.zeros((0, 4), int)), ValueError, "prediction_history is empty"),
        (lambda: iteration_learned(np.zeros((3, 4))), TypeError, "prediction_history must hold integer"),
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
        # accumulator
        (lambda: EnsembleAccumulator(0, 3), ValueError, "n must be >= 1"),
        (lambda: EnsembleAccumulator(3, 0), ValueError, "n_classes must be >= 1"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1], [True, False]), ValueError, "predictions has 2 entries but n=3"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 2, 1], [True] * 3), ValueError, "predictions contains class 2"),
        (lambda: EnsembleAccumulator(3, 2).add([[0, 1, 1]], [True] * 3), ValueError, "predictions must be 1-D"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1, 1], [1, 0, 1]), TypeError, "held_out must be boolean"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1, 1], [True, False]), ValueError, "held_out has shape"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1, 1], [True] * 3, depth=[1, 2]), ValueError, "depth has shape"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1, 1], [True] * 3, depth=[1, 2, 3]).add([0, 1, 1], [True] * 3),
         ValueError, "depth must be given for every model or for none"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1, 1], [True] * 3).add([0, 1, 1], [True] * 3, depth=[1, 2, 3]),
         ValueError, "depth must be given for every model or for none"),
        (lambda: EnsembleAccumulator(3, 2).result([0, 1, 1]), ValueError, "no models were added"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1, 1], [True] * 3).result([0, 2, 1]),
         ValueError, "labels contains class 2"),
        (lambda: EnsembleAccumulator(3, 2).add([0, 1, 1], [True] * 3).result([0, 1]),
         ValueError, "labels has 2 entries"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_model_leaves_accumulator_untouched():
    acc = EnsembleAccumulator(3, 2).add([0, 1, 1], [True, False, True], depth=[1, 2, 3])
    before = (acc.votes.copy(), acc.n_held_out.copy(), acc.depth_val, acc.depth_train)
    with pytest.raises(ValueError):
        acc.add([0, 1, 1], [True, True, True], depth=[1, 2])
    after = (acc.votes, acc.n_held_out, acc.depth_val, acc.depth_train)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)
    assert acc.n_models == 1
