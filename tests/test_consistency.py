"""Ensemble metrics against literal loop implementations, plus hypothesis properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdlib import prediction_depth
from pdlib.consistency import (
    consensus_class,
    consensus_consistency,
    consistency_score,
    iteration_learned,
    rescale_iteration,
    split_means,
)


def loop_metrics(predictions, held_out, labels, n_classes):
    """Eq. 1, the consensus with its tie rule, and Eq. 2, one point at a time."""
    r, n = predictions.shape
    consistency, consensus, star = np.full(n, np.nan), np.full(n, -1), np.full(n, np.nan)
    for i in range(n):
        votes = [predictions[m, i] for m in range(r) if held_out[m, i]]
        if not votes:
            continue
        consistency[i] = sum(v == labels[i] for v in votes) / len(votes)
        counts = [votes.count(c) for c in range(n_classes)]
        tied = [c for c in range(n_classes) if counts[c] == max(counts)]
        consensus[i] = labels[i] if labels[i] in tied else min(tied)
        star[i] = sum(v == consensus[i] for v in votes) / len(votes)
    return consistency, consensus, star


ensembles = st.tuples(st.integers(1, 8), st.integers(1, 25), st.integers(2, 5), st.integers(0, 2**31 - 1))


def draw(shape):
    r, n, n_classes, seed = shape
    rng = np.random.default_rng(seed)
    predictions = rng.integers(0, n_classes, (r, n))
    held_out = rng.random((r, n)) < 0.4
    labels = rng.integers(0, n_classes, n)
    return predictions, held_out, labels, n_classes


@settings(max_examples=200, deadline=None)
@given(ensembles)
def test_matches_loop(shape):
    predictions, held_out, labels, n_classes = draw(shape)
    consistency, consensus, star = loop_metrics(predictions, held_out, labels, n_classes)
    np.testing.assert_array_equal(consistency_score(predictions, held_out, labels), consistency)
    got = consensus_class(predictions, held_out, labels, n_classes)
    np.testing.assert_array_equal(got, consensus)
    np.testing.assert_array_equal(consensus_consistency(predictions, held_out, got), star)


@settings(max_examples=100, deadline=None)
@given(ensembles, st.randoms(use_true_random=False))
def test_model_order_does_not_matter(shape, random):
    predictions, held_out, labels, n_classes = draw(shape)
    order = list(range(predictions.shape[0]))
    random.shuffle(order)
    for f in (lambda p, h: consistency_score(p, h, labels), lambda p, h: consensus_class(p, h, labels, n_classes)):
        np.testing.assert_array_equal(f(predictions[order], held_out[order]), f(predictions, held_out))


@settings(max_examples=100, deadline=None)
@given(ensembles)
def test_bounds(shape):
    predictions, held_out, labels, n_classes = draw(shape)
    consensus = consensus_class(predictions, held_out, labels, n_classes)
    star = consensus_consistency(predictions, held_out, consensus)
    consistency = consistency_score(predictions, held_out, labels)
    seen = held_out.any(axis=0)
    assert np.isnan(consistency[~seen]).all() and (consensus[~seen] == -1).all()
    assert ((0 <= consistency[seen]) & (consistency[seen] <= 1)).all()
    # the consensus is a plurality: at least a 1/n_classes share, and never below the label's share
    assert (star[seen] >= 1 / n_classes - 1e-12).all()
    assert (star[seen] >= consistency[seen] - 1e-12).all()


def test_tie_rules():
    held_out = np.ones((4, 2), dtype=bool)
    predictions = np.array([[2, 2], [2, 2], [1, 3], [1, 3]])
    # point 0: classes 1 and 2 tie and the label 2 is among them; point 1: 2 and 3 tie, label 0 is not
    assert consensus_class(predictions, held_out, [2, 0], 4).tolist() == [2, 2]
    assert consensus_class(predictions, held_out, [1, 3], 4).tolist() == [1, 3]


def test_iteration_learned_is_depth_over_time(rng):
    history = rng.integers(0, 3, (12, 50))
    np.testing.assert_array_equal(iteration_learned(history), prediction_depth(history, history[-1]))
    assert iteration_learned(np.zeros((5, 4), int)).tolist() == [0, 0, 0, 0]
    assert iteration_learned([[0], [1], [0], [1]]).tolist() == [3]


def test_rescale_iteration():
    iteration = np.arange(101)
    rescaled = rescale_iteration(iteration)
    assert rescaled[0] == 0 and rescaled[95] == pytest.approx(1.0) and rescaled[100] > 1
    assert rescale_iteration(np.zeros(10)).tolist() == [0.0] * 10


def test_split_means():
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    held_out = np.array([[True, False], [False, False], [True, False]])
    val, train = split_means(values, held_out)
    np.testing.assert_array_equal(val, [3.0, np.nan])
    np.testing.assert_array_equal(train, [3.0, 4.0])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: consistency_score(np.zeros((2, 3), int), np.ones((2, 4), bool), [0, 0, 0]), ValueError, "held_out has shape"),
        (lambda: consistency_score(np.zeros((2, 3), int), np.ones((2, 3), int), [0, 0, 0]), TypeError, "held_out must be boolean"),
        (lambda: consistency_score(np.zeros((2, 3)), np.ones((2, 3), bool), [0, 0, 0]), TypeError, "predictions must hold integer"),
        (lambda: consistency_score(np.zeros((2, 3), int), np.ones((2, 3), bool), [0, 0]), ValueError, "labels has 2 entries"),
        (lambda: consistency_score(np.zeros((0, 3), int), np.ones((0, 3), bool), [0, 0, 0]), ValueError, "non-empty"),
        (lambda: consensus_class(np.zeros((2, 3), int), np.ones((2, 3), bool), [0, 5, 0], 3), ValueError, "labels contains class 5"),
        (lambda: consensus_class(np.full((2, 3), 4), np.ones((2, 3), bool), [0, 1, 0], 3), ValueError, "predictions must lie"),
        (lambda: consensus_consistency(np.zeros((2, 3), int), np.ones((2, 3), bool), [0, 0]), ValueError, "consensus must have shape"),
        (lambda: iteration_learned(np.zeros(4, int)), ValueError, "prediction_history must be"),
        (lambda: rescale_iteration([1, 2], quantile=0), ValueError, "quantile"),
        (lambda: split_means(np.zeros((2, 3)), np.ones((2, 2), bool)), ValueError, "same 2-D shape"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
