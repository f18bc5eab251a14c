"""Summary metrics: rescaling, correlation matrices, probe accuracy, softmax disagreement."""

import numpy as np
import pytest

from pdlib.metrics import depth_correlation_matrix, probe_accuracy, rescale_depth, softmax_disagreement


def test_rescale_depth():
    np.testing.assert_allclose(rescale_depth(np.array([0, 7, 14]), 15), [0, 0.5, 1])
    with pytest.raises(ValueError, match="n_probes"):
        rescale_depth([0], 1)


def test_correlation_matrix_diagonal_is_between_seeds(rng):
    base = rng.integers(0, 9, 500).astype(float)
    mlp = [base + rng.normal(0, 1, 500), base + rng.normal(0, 1, 500)]
    cnn = [base + rng.normal(0, 3, 500)]
    names, matrix = depth_correlation_matrix({"mlp": mlp, "cnn": cnn})
    assert names == ["mlp", "cnn"]
    np.testing.assert_allclose(matrix[0, 0], np.corrcoef(mlp[0], mlp[1])[0, 1])
    assert np.isnan(matrix[1, 1])  # a single run has no seed pair
    expected = np.mean([np.corrcoef(m, cnn[0])[0, 1] for m in mlp])
    np.testing.assert_allclose([matrix[0, 1], matrix[1, 0]], [expected, expected])
    with pytest.raises(ValueError, match="same points"):
        depth_correlation_matrix({"a": [np.zeros(3)], "b": [np.zeros(4)]})


def test_probe_accuracy_and_softmax_disagreement():
    probes = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]])
    np.testing.assert_allclose(probe_accuracy(probes, [1, 1, 1, 1]), [0.5, 0.75, 0.75])
    assert softmax_disagreement(probes, np.array([1, 1, 0, 0])) == 0.25
    with pytest.raises(ValueError, match="shapes"):
        probe_accuracy(probes, [1, 1])
