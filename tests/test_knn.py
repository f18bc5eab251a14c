"""knn_predict against scikit-learn's brute-force k-NN, plus the bad inputs."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from pdlib import KNNProbe, knn_neighbours, knn_predict
from pdlib.knn import SLABS, TILE, _select, _slab_minima


def sklearn_oracle(reference, labels, queries, k, n_classes):
    """Predictions and votes by scikit-learn; queries=None means leave-one-out."""
    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(reference, labels)
    neighbours = clf.kneighbors(queries, return_distance=False)
    votes = np.stack([np.bincount(labels[row], minlength=n_classes) for row in neighbours])
    if queries is not None:
        # scikit-learn's own predict is the oracle for the tie rule
        np.testing.assert_array_equal(clf.predict(queries), votes.argmax(axis=1))
    return votes.argmax(axis=1), votes, neighbours


@pytest.mark.parametrize("leave_one_out", [False, True])
@pytest.mark.parametrize("k, n_classes", [(1, 2), (5, 3), (30, 10), (30, 100), (64, 7)])
def test_matches_sklearn_float64(rng, leave_one_out, k, n_classes):
    reference = rng.standard_normal((1500, 24))
    labels = rng.integers(0, n_classes, 1500)
    queries = None if leave_one_out else rng.standard_normal((400, 24))
    expected_pred, expected_votes, expected_neighbours = sklearn_oracle(reference, labels, queries, k, n_classes)
    predictions, votes = knn_predict(reference, labels, queries, k=k, n_classes=n_classes, device="cpu")
    np.testing.assert_array_equal(predictions, expected_pred)
    np.testing.assert_array_equal(votes, expected_votes)
    assert predictions.dtype == np.int64 and votes.shape == (len(expected_pred), n_classes)
    np.testing.assert_array_equal(knn_neighbours(reference, queries, k=k, device="cpu"), expected_neighbours)


@pytest.mark.parametrize("leave_one_out", [False, True])
def test_float32_matches_sklearn_except_near_ties(rng, leave_one_out):
    """float32 GEMM distances may swap neighbours whose distances agree to ~1e-6."""
    reference = rng.standard_normal((6000, 64)).astype(np.float32) + 3.0  # offset: exercises centring
    labels = rng.integers(0, 10, 6000)
    queries = None if leave_one_out else (rng.standard_normal((700, 64)).astype(np.float32) + 3.0)
    expected, _, _ = sklearn_oracle(reference.astype(np.float64), labels, queries, 30, 10)
    predictions, votes = knn_predict(reference, labels, queries, k=30, device="cpu", block_bytes=2**20)
    mismatch = np.flatnonzero(predictions != expected)
    q = reference if queries is None else queries
    for i in mismatch:  # every disagreement must sit at a near-tie of the 30th/31st distance
        d = np.sort(np.linalg.norm(reference.astype(np.float64) - q[i], axis=1))
        d = d[1:] if leave_one_out else d
        assert abs(d[29] - d[30]) < 1e-4 * d[30]
    assert len(mismatch) <= 2
    assert (votes.sum(axis=1) == 30).all()


def test_blocking_does_not_change_result(rng):
    reference = rng.standard_normal((5000, 8))  # float64: blocking changes float32 rounding at near-ties
    labels = rng.integers(0, 4, 5000)
    small = knn_neighbours(reference, None, k=30, device="cpu", block_bytes=4096)
    large = knn_neighbours(reference, None, k=30, device="cpu", block_bytes=2**28)
    np.testing.assert_array_equal(small, large)
    assert not (small == np.arange(5000)[:, None]).any(), "leave-one-out must exclude the point itself"
    knn_predict(reference, labels, k=30)  # default device works


def test_select_is_exact(rng):
    scores = torch.as_tensor(rng.standard_normal((3, 40, TILE)), dtype=torch.float32)
    scores[2, :, 1000:] = float("inf")  # a partial last tile
    minima = torch.empty(3, 40, TILE // SLABS)
    for tile in range(3):
        _slab_minima(scores[tile, :37], minima[tile, :37])
    values, columns = _select(scores, minima, 37, 3, 30)
    flat = scores[:, :37].permute(1, 0, 2).reshape(37, -1)
    expected = torch.topk(flat, 30, dim=1, largest=False).values
    torch.testing.assert_close(values.sort(dim=1).values, expected.sort(dim=1).values)
    torch.testing.assert_close(torch.gather(flat, 1, columns), values)


def test_tiled_path_matches_sklearn(rng):
    """More reference points than one tile, an uneven last tile and several blocks of rows."""
    reference = rng.standard_normal((3 * TILE + 123, 5))
    labels = rng.integers(0, 3, len(reference))
    queries = rng.standard_normal((300, 5))
    expected, _, neighbours = sklearn_oracle(reference, labels, queries, 30, 3)
    got = knn_neighbours(reference, queries, k=30, device="cpu", block_bytes=4 * 2 * TILE * 50)
    np.testing.assert_array_equal(got, neighbours)
    loo = knn_neighbours(reference[:9000], None, k=10, device="cpu", block_bytes=4 * 3 * TILE * 64)
    np.testing.assert_array_equal(loo, sklearn_oracle(reference[:9000], labels[:9000], None, 10, 3)[2])


def test_class_ties_go_to_smallest_index():
    reference = np.array([[0.0], [1.0], [-1.0], [2.0]])
    _, votes = knn_predict(reference, [3, 1, 1, 3], np.array([[0.4]]), k=2, n_classes=4)
    predictions, _ = knn_predict(reference, [3, 1, 2, 3], np.array([[0.1]]), k=2, n_classes=4)
    assert votes.tolist() == [[0, 1, 0, 1]] and predictions.tolist() == [1]


def test_torch_inputs_and_missing_classes(rng):
    reference = torch.randn(200, 5)
    labels = torch.randint(0, 3, (200,))
    predictions, votes = knn_predict(reference, labels, k=3, n_classes=6)
    assert votes.shape == (200, 6) and votes[:, 3:].sum() == 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(4, int)), ValueError, "labels"),
        (dict(reference=np.zeros(5), labels=np.zeros(5, int)), ValueError, "reference must be 2-D"),
        (dict(reference=np.full((5, 2), np.nan), labels=np.zeros(5, int)), ValueError, "reference contains NaN"),
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.array([[np.inf, 0]])), ValueError, "queries contains NaN"),
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.zeros((3, 3))), ValueError, "queries has 3 features"),
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), k=0), ValueError, "k must be >= 1"),
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.zeros((1, 2)), k=5), ValueError, "k=5 is too large"),
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), k=5), ValueError, "leave-one-out"),
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), k=2.5), TypeError, "k must be an integer"),
        (dict(reference=np.zeros((5, 2)), labels=np.array([0, 1, -1, 0, 1])), ValueError, "labels must be non-negative"),
        (dict(reference=np.zeros((5, 2)), labels=np.array([0, 1, 3, 0, 1]), n_classes=3), ValueError, "n_classes=3"),
        (dict(reference=np.zeros((0, 2)), labels=np.zeros(0, int)), ValueError, "reference is empty"),
        (dict(reference=np.zeros((5, 2)), labels=np.zeros(5, int), queries=np.zeros((0, 2))), ValueError, "queries is empty"),
        (dict(reference="abc", labels=np.zeros(5, int)), TypeError, "reference must be an array"),
        (dict(reference=np.zeros((5, 2)), labels=np.array(["a"] * 5)), TypeError, "labels must hold integer"),
    ],
)
def test_bad_inputs(kwargs, error, match):
    kwargs.setdefault("k", 1)
    with pytest.raises(error, match=match):
        knn_predict(**kwargs)


def test_knn_probe_estimator_matches_function(rng):
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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_symmetric_leave_one_out_matches_sklearn(rng, monkeypatch, dtype):
    """Leave-one-out computing each pair once: uneven padded tiles, several spans per row block."""
    import pdlib.knn as knn

    monkeypatch.setattr(knn, "SYMMETRIC_MIN_DIM", 0)
    monkeypatch.setattr(knn, "SYMMETRIC_TILE", 2560)
    reference = rng.standard_normal((9001, 12)) + 3.0  # offset: exercises centring
    labels = rng.integers(0, 5, len(reference))
    itemsize = np.dtype(dtype).itemsize
    width = knn._symmetric_width(len(reference), 12, 30, 2**28, itemsize)
    assert width is not None and 3 * width < len(reference) < 4 * width  # four tiles, the last one padded
    _, _, expected = sklearn_oracle(reference, labels, None, 30, 5)
    for block_bytes in (2**28, 3 * width * width * itemsize):  # up to 16 tiles per span, or 2
        got = knn_neighbours(reference.astype(dtype), None, k=30, device="cpu", block_bytes=block_bytes)
        assert not (got == np.arange(len(reference))[:, None]).any()
        if dtype == np.float64:
            np.testing.assert_array_equal(got, expected)
        else:  # float32 rounding may swap neighbours at near-ties only
            differ = np.flatnonzero((got != expected).any(axis=1))
            assert len(differ) <= 5
            for i in differ:
                d = np.sort(((reference - reference[i]) ** 2).sum(axis=1))[1:]
                mine = ((reference[got[i]] - reference[i]) ** 2).sum(axis=1)
                assert mine.max() <= d[29] * (1 + 1e-5)


def test_reference_centred_tile_by_tile_matches_sklearn(rng, monkeypatch):
    """A reference larger than block_bytes is centred tile by tile, in both tiled paths."""
    import pdlib.knn as knn

    reference = rng.standard_normal((4500, 128)) + 2.0
    labels = rng.integers(0, 3, len(reference))
    queries = rng.standard_normal((200, 128)) + 2.0
    assert reference.nbytes > 2**22  # not copied: centred as it is used
    _, _, expected = sklearn_oracle(reference, labels, queries, 5, 3)
    np.testing.assert_array_equal(knn_neighbours(reference, queries, k=5, device="cpu", block_bytes=2**22), expected)
    _, _, expected = sklearn_oracle(reference, labels, None, 5, 3)
    np.testing.assert_array_equal(knn_neighbours(reference, None, k=5, device="cpu", block_bytes=2**22), expected)
    monkeypatch.setattr(knn, "SYMMETRIC_MIN_DIM", 0)
    monkeypatch.setattr(knn, "SYMMETRIC_TILE", 512)
    assert knn._symmetric_width(len(reference), 128, 5, 2**22, 8) == 512
    np.testing.assert_array_equal(knn_neighbours(reference, None, k=5, device="cpu", block_bytes=2**22), expected)
