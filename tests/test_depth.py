"""prediction_depth against a loop over the definition, plus hypothesis properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pdlib import prediction_depth


def depth_by_loop(probe_predictions, final_prediction):
    """The paper's definition, read literally, one point at a time."""
    n_probes, n = probe_predictions.shape
    depth = np.empty(n, dtype=np.int64)
    for i in range(n):
        depth[i] = n_probes - 1  # even the softmax probe disagrees: decided at the output
        for layer in range(n_probes):
            if all(probe_predictions[later, i] == final_prediction[i] for later in range(layer, n_probes)):
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
def test_matches_loop(table):
    probes, final = table
    np.testing.assert_array_equal(prediction_depth(probes, final), depth_by_loop(probes, final))


@settings(max_examples=100, deadline=None)
@given(probe_tables, st.permutations(range(4)))
def test_relabelling_classes_leaves_depth_unchanged(table, permutation):
    probes, final = table
    relabel = np.asarray(permutation)
    np.testing.assert_array_equal(prediction_depth(relabel[probes], relabel[final]), prediction_depth(probes, final))


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


def test_known_cases():
    probes = np.array([[0, 1, 1, 2], [1, 1, 0, 2], [1, 1, 1, 1]])
    assert prediction_depth(probes, np.array([1, 1, 1, 2])).tolist() == [1, 0, 2, 2]


@pytest.mark.parametrize(
    "probes, final, error, match",
    [
        (np.zeros(3, int), np.zeros(3, int), ValueError, "probe_predictions must be 2-D"),
        (np.zeros((2, 3), int), np.zeros((3, 1), int), ValueError, "final_prediction must be 1-D"),
        (np.zeros((2, 3), int), np.zeros(4, int), ValueError, "final_prediction has 4"),
        (np.zeros((2, 0), int), np.zeros(0, int), ValueError, "empty"),
        (np.zeros((2, 3)), np.zeros(3, int), TypeError, "probe_predictions must hold integer"),
        ("abc", np.zeros(3, int), TypeError, "probe_predictions must be an array"),
    ],
)
def test_bad_inputs(probes, final, error, match):
    with pytest.raises(error, match=match):
        prediction_depth(probes, final)
