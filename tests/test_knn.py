"""The exact k-NN against scikit-learn's brute force and a lexsort oracle for ties, plus bad
inputs."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from pdlib import KNNProbe, knn_neighbours, knn_predict


def sklearn_oracle(reference, labels, queries, k, n_classes):
    """Predictions, votes and neighbours by scikit-learn; queries=None means leave-one-out."""
    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(reference, labels)
    neighbours = clf.kneighbors(queries, return_distance=False)
    votes = np.stack([np.bincount(labels[row], minlength=n_classes) for row in neighbours])
    if queries is not None:  # scikit-learn's own predict is the oracle for the class-tie rule
        np.testing.assert_array_equal(clf.predict(queries), votes.argmax(axis=1))
    return votes.argmax(axis=1), votes, neighbours


def lexsort_oracle(reference, queries, k):
    """Neighbours by (exact float64 squared distance, index): the documented tie order."""
    q = reference if queries is None else queries
    distance = ((q[:, None, :].astype(np.float64) - reference[None, :, :]) ** 2).sum(axis=2)
    if queries is None:
        np.fill_diagonal(distance, np.inf)
    index = np.arange(reference.shape[0])
    return np.stack([np.lexsort((index, row))[:k] for row in distance])


@pytest.mark.parametrize("leave_one_out", [False, True])
@pytest.mark.parametrize("k, n_classes", [(1, 2), (5, 3), (30, 10), (30, 100), (64, 7)])
def test_matches_sklearn_float64(rng, leave_one_out, k, n_classes):
    reference = rng.standard_normal((1500, 24))
    labels = rng.integers(0, n_classes, 1500)
    queries = None if leave_one_out else rng.standard_normal((400, 24))
    expected_pred, expected_votes, expected_neighbours = sklearn_oracle(
        reference, labels, queries, k, n_classes
    )
    predictions, votes = knn_predict(
        reference, labels, queries, k=k, n_classes=n_classes, device="cpu"
    )
    np.testing.assert_array_equal(predictions, expected_pred)
    np.testing.assert_array_equal(votes, expected_votes)
    assert predictions.dtype == np.int64 and votes.shape == (len(expected_pred), n_classes)
    np.testing.assert_array_equal(
        knn_neighbours(reference, queries, k=k, device="cpu"), expected_neighbours
    )


@pytest.mark.parametrize("leave_one_out", [False, True])
def test_float32_matches_sklearn_except_near_ties(rng, leave_one_out):
    """float32 GEMM distances may swap neighbours whose distances agree to ~1e-6."""
    reference = (
        rng.standard_normal((6000, 64)).astype(np.float32) + 3.0
    )  # offset: exercises centring
    labels = rng.integers(0, 10, 6000)
    queries = None if leave_one_out else (rng.standard_normal((700, 64)).astype(np.float32) + 3.0)
    expected, _, _ = sklearn_oracle(reference.astype(np.float64), labels, queries, 30, 10)
    predictions, votes = knn_predict(
        reference, labels, queries, k=30, device="cpu", block_bytes=2**20
    )
    mismatch = np.flatnonzero(predictions != expected)
    q = reference if queries is None else queries
    for i in mismatch:  # every disagreement must sit at a near-tie of the 30th/31st distance
        d = np.sort(np.linalg.norm(reference.astype(np.float64) - q[i], axis=1))
        d = d[1:] if leave_one_out else d
        assert abs(d[29] - d[30]) < 1e-4 * d[30]
    assert len(mismatch) <= 2
    assert (votes.sum(axis=1) == 30).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("leave_one_out", [False, True])
@pytest.mark.parametrize("k", [1, 7, 30])
def test_exact_distance_ties_go_to_the_smaller_index(rng, dtype, leave_one_out, k):
    """Points on a coarse integer grid: most distances tie exactly, in both precisions."""
    reference = rng.integers(0, 3, (700, 4)).astype(dtype)
    queries = None if leave_one_out else rng.integers(0, 3, (150, 4)).astype(dtype)
    expected = lexsort_oracle(reference, queries, k)
    for block_bytes in (None, 4 * 700 * 7):  # one block, or chunks of 7 queries
        got = knn_neighbours(reference, queries, k=k, device="cpu", block_bytes=block_bytes)
        np.testing.assert_array_equal(got, expected)


def test_saturated_softmax_ties(rng):
    """A confident network's softmax probe: many points at exactly the same one-hot embedding."""
    reference = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 500)]
    reference[::7] = rng.dirichlet(np.ones(3), len(reference[::7])).astype(np.float32)
    np.testing.assert_array_equal(
        knn_neighbours(reference, None, k=30, device="cpu"), lexsort_oracle(reference, None, 30)
    )


def test_blocking_does_not_change_result(rng):
    reference = rng.standard_normal(
        (5000, 8)
    )  # float64: blocking changes float32 rounding at near-ties
    queries = rng.standard_normal((900, 8))
    whole = knn_neighbours(reference, queries, k=30, device="cpu")
    for block_bytes in (8 * 5000, 8 * 5000 * 77, 2**30):
        np.testing.assert_array_equal(
            knn_neighbours(reference, queries, k=30, device="cpu", block_bytes=block_bytes), whole
        )
    loo = knn_neighbours(reference, None, k=30, device="cpu")
    np.testing.assert_array_equal(
        knn_neighbours(reference, None, k=30, device="cpu", block_bytes=8 * 5000 * 3), loo
    )
    assert not (loo == np.arange(5000)[:, None]).any()


def test_class_ties_go_to_smallest_index():
    reference = np.array([[0.0], [1.0], [-1.0], [2.0]])
    _, votes = knn_predict(reference, [3, 1, 1, 3], np.array([[0.4]]), k=2, n_classes=4)
    predictions, _ = knn_predict(reference, [3, 1, 2, 3], np.array([[0.1]]), k=2, n_classes=4)
    assert votes.tolist() == [[0, 1, 0, 1]] and predictions.tolist() == [1]


def test_torch_inputs_and_missing_classes(rng):
    reference = torch.randn(200, 5)
    labels = torch.randint(0, 3, (200,))
    predictions, votes = knn_predict(
        reference, labels, k=3, n_classes=6, device=torch.device("cpu")
    )
    assert votes.shape == (200, 6) and votes[:, 3:].sum() == 0
    assert (predictions == votes.argmax(axis=1)).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(4, int)), ValueError, "labels"),
        (dict(reference=np.zeros(5), labels=np.zeros(5, int)), ValueError, "reference must be 2-D"),
        (
            dict(reference=np.full((5, 2), np.nan), labels=np.zeros(5, int)),
            ValueError,
            "reference contains NaN",
        ),
        (
            dict(
                reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.array([[np.inf, 0]])
            ),
            ValueError,
            "queries contains NaN",
        ),
        (
            dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.zeros((3, 3))),
            ValueError,
            "queries has 3 features",
        ),
        (
            dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), k=0),
            ValueError,
            "k must be >= 1",
        ),
        (
            dict(
                reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.zeros((1, 2)), k=5
            ),
            ValueError,
            "k=5 is too large",
        ),
        (
            dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), k=5),
            ValueError,
            "leave-one-out",
        ),
        (
            dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), k=2.5),
            TypeError,
            "k must be an integer",
        ),
        (
            dict(reference=np.zeros((5, 2)), labels=np.array([0, 1, -1, 0, 1])),
            ValueError,
            "labels must be non-negative",
        ),
        (
            dict(reference=np.zeros((5, 2)), labels=np.array([0, 1, 3, 0, 1]), n_classes=3),
            ValueError,
            "n_classes=3",
        ),
        (
            dict(reference=np.zeros((0, 2)), labels=np.zeros(0, int)),
            ValueError,
            "reference is empty",
        ),
        (
            dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.zeros((0, 2))),
            ValueError,
            "queries is empty",
        ),
        (dict(reference="abc", labels=np.zeros(5, int)), TypeError, "reference must be an array"),
        (
            dict(reference=np.zeros((5, 2)), labels=np.array(["a"] * 5)),
            TypeError,
            "labels must hold integer",
        ),
    ],
)
def test_bad_inputs(kwargs, error, match):
    kwargs.setdefault("k", 1)
    with pytest.raises(error, match=match):
        knn_predict(**kwargs)


def test_knn_probe_estimator_matches_sklearn(rng):
    X = rng.standard_normal((300, 6))
    y = np.array(["cat", "dog", "emu"])[rng.integers(0, 3, 300)]
    Q = rng.standard_normal((50, 6))
    probe = KNNProbe(n_neighbors=7).fit(X, y)
    reference = KNeighborsClassifier(7, algorithm="brute").fit(X, y)
    np.testing.assert_array_equal(probe.predict(Q), reference.predict(Q))
    np.testing.assert_allclose(probe.predict_proba(Q), reference.predict_proba(Q))
    assert probe.score(Q, reference.predict(Q)) == 1.0


@pytest.mark.slow
def test_knn_probe_passes_check_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(KNNProbe(n_neighbors=3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(rng):
    reference = rng.standard_normal((3000, 32)).astype(np.float32)
    queries = rng.standard_normal((500, 32)).astype(np.float32)
    for q in (None, queries):
        cpu = knn_neighbours(reference, q, k=30, device="cpu")
        cuda = knn_neighbours(reference, q, k=30, device="cuda")
        assert (cpu != cuda).any(axis=1).mean() < 0.01  # only float near-ties may differ
