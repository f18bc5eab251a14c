"""The label-error measures of pdlib.labelnoise against scikit-learn, on random scores with ties."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from pdlib.labelnoise import auroc, average_precision, precision_at_k


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_average_precision_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 20, 300) / 4.0  # many ties
    truth = rng.random(300) < 0.2
    assert auroc(score, truth) == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    assert average_precision(score, truth) == pytest.approx(
        average_precision_score(truth, score), abs=1e-12
    )


def test_precision_at_k_counts_tied_places_by_their_mean_truth():
    assert precision_at_k([1.0, 1.0, 1.0, 0.0], [False, True, True, False], k=2) == pytest.approx(
        2 / 3
    )
    assert precision_at_k([3.0, 2.0, 1.0], [True, True, False]) == 1.0


def test_undefined_without_both_classes():
    assert np.isnan(auroc([0.1, 0.2], [True, True])) and np.isnan(
        average_precision([0.1, 0.2], [False, False])
    )
