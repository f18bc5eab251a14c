"""knn_predict against scikit-learn's brute-force k-NN, plus the bad inputs."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from pdlib import KNNProbe, knn_neighbours, knn_predict
import pdlib._scan
from pdlib.knn import SLAB, TILE, _absorb, _column_slab_minima, _running_top_k, _slab_minima, _start


@pytest.fixture(params=["compiled", "torch"])
def backend(request, monkeypatch):
    """Both top-k paths: the compiled scans (CPU) and the torch one (CUDA, or no C compiler)."""
    if request.param == "torch":
        monkeypatch.setattr(pdlib._scan, "available", lambda device: False)
    else:
        _require_compiled_scans()
    return request.param


def _require_compiled_scans():
    """Skip where no C compiler is installed; where one is, the scans must build."""
    import shutil

    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler: pdlib uses its torch k-NN path")
    assert pdlib._scan.available(torch.device("cpu")), "a C compiler is installed but the scans did not build"


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
def test_matches_sklearn_float64(rng, backend, leave_one_out, k, n_classes):
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
def test_float32_matches_sklearn_except_near_ties(rng, backend, leave_one_out):
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


def test_blocking_does_not_change_result(rng, backend):
    reference = rng.standard_normal((5000, 8))  # float64: blocking changes float32 rounding at near-ties
    labels = rng.integers(0, 4, 5000)
    small = knn_neighbours(reference, None, k=30, device="cpu", block_bytes=2**16)
    large = knn_neighbours(reference, None, k=30, device="cpu", block_bytes=2**28)
    np.testing.assert_array_equal(small, large)
    assert not (small == np.arange(5000)[:, None]).any(), "leave-one-out must exclude the point itself"
    knn_predict(reference, labels, k=30)  # default device works


def _top_k_oracle(scores, k):
    """Each row's k smallest (score, column) pairs, by score then column: (values, columns) sorted."""
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), order


def _sorted_pairs(values, index):
    order = np.lexsort((index, values), axis=1)
    return np.take_along_axis(values, order, 1), np.take_along_axis(index, order, 1)


@pytest.mark.parametrize("k", [1, 7, 30])
def test_torch_slab_merges_are_exact(rng, k):
    """_start then _absorb over row tiles and over column tiles give each point's exact top-k."""
    n_points, width, n_tiles = 40, 256, 3
    rows = torch.as_tensor(rng.standard_normal((n_tiles, n_points, width)))
    rows[2, :, 200:] = float("inf")  # a padded last tile
    best_values, best_index, threshold = _running_top_k(n_points, k, torch.float64, "cpu")
    for tile in range(n_tiles):
        merge = _start if tile == 0 else _absorb
        merge(best_values, best_index, threshold, 0, _slab_minima(rows[tile]), rows[tile].reshape(-1), width, 1,
              tile * width)
    flat = rows.permute(1, 0, 2).reshape(n_points, -1).numpy()
    expected = _top_k_oracle(flat, k)
    np.testing.assert_array_equal(_sorted_pairs(best_values.numpy(), best_index.numpy())[1], expected[1])
    np.testing.assert_array_equal(threshold.numpy(), expected[0][:, -1])
    # The same points as the columns of (width x n_points) tiles.
    columns = torch.as_tensor(rng.standard_normal((n_tiles, width, n_points)))
    best_values, best_index, threshold = _running_top_k(n_points, k, torch.float64, "cpu")
    for tile in range(n_tiles):
        merge = _start if tile == 0 else _absorb
        merge(best_values, best_index, threshold, 0, _column_slab_minima(columns[tile]), columns[tile].reshape(-1),
              1, n_points, tile * width)
    expected = _top_k_oracle(columns.permute(2, 0, 1).reshape(n_points, -1).numpy(), k)
    np.testing.assert_array_equal(_sorted_pairs(best_values.numpy(), best_index.numpy())[1], expected[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 5, 30])
def test_compiled_scans_are_exact_with_ties(rng, dtype, k):
    """Row and column scans keep the k smallest (distance, index) pairs, even among many exact ties."""
    _require_compiled_scans()
    n_points, width = 50, 333  # not a multiple of 16: exercises the scalar tails
    # Small integers: many exactly equal scores, so the tie rule (smaller index first) is tested.
    tiles = [torch.as_tensor(rng.integers(0, 20, (n_points, width)), dtype=dtype) for _ in range(3)]
    reservoirs = pdlib._scan.Reservoirs(n_points, k, dtype)
    for t, tile in enumerate(tiles):
        pdlib._scan.scan_rows(tile, reservoirs, 0, t * width, False)
    values, index = (x.numpy() for x in reservoirs.result())
    expected_values, expected_index = _top_k_oracle(torch.cat(tiles, 1).numpy(), k)
    got_values, got_index = _sorted_pairs(values, index)
    np.testing.assert_array_equal(got_index, expected_index)
    np.testing.assert_array_equal(got_values, expected_values)
    # Columns: tile t's rows are candidates t * width + row; a point's first tile comes by rows.
    first = torch.as_tensor(rng.integers(0, 20, (n_points, 64)), dtype=dtype)
    later = [torch.as_tensor(rng.integers(0, 20, (width, n_points)), dtype=dtype) for _ in range(2)]
    reservoirs = pdlib._scan.Reservoirs(n_points, k, dtype)
    pdlib._scan.scan_rows(first, reservoirs, 0, 0, False)
    for t, tile in enumerate(later):
        pdlib._scan.scan_columns(tile, reservoirs, 64 + t * width, 0)
    values, index = (x.numpy() for x in reservoirs.result())
    everything = np.concatenate([first.numpy()] + [tile.T.numpy() for tile in later], 1)
    expected_values, expected_index = _top_k_oracle(everything, k)
    np.testing.assert_array_equal(_sorted_pairs(values, index)[1], expected_index)


def test_compiled_scan_skips_self_and_cold_rows_use_group_bound(rng):
    """Leave-one-out never takes the point itself; a cold row (empty reservoir) starts from its own tile."""
    _require_compiled_scans()
    scores = torch.as_tensor(rng.standard_normal((64, 64)), dtype=torch.float32)
    scores.diagonal().fill_(-100.0)  # the point itself would always win
    reservoirs = pdlib._scan.Reservoirs(64, 3, torch.float32)
    pdlib._scan.scan_rows(scores, reservoirs, 0, 0, True)
    _, index = reservoirs.result()
    assert not (index.numpy() == np.arange(64)[:, None]).any()
    masked = scores.clone()
    masked.diagonal().fill_(float("inf"))
    np.testing.assert_array_equal(np.sort(index.numpy(), 1), np.sort(_top_k_oracle(masked.numpy(), 3)[1], 1))


def test_tiled_path_matches_sklearn(rng, backend):
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
def test_symmetric_leave_one_out_matches_sklearn(rng, monkeypatch, backend, dtype):
    """Leave-one-out computing each pair once: uneven padded tiles, both halves of each product."""
    import pdlib.knn as knn

    monkeypatch.setattr(knn, "TILE", 2560)
    reference = rng.standard_normal((9001, 12)) + 3.0  # offset: exercises centring
    labels = rng.integers(0, 5, len(reference))
    itemsize = np.dtype(dtype).itemsize
    width = knn._symmetric_width(len(reference), 2**28, itemsize)
    assert width == 2560 and 3 * width < len(reference) < 4 * width  # four tiles, the last one padded
    _, _, expected = sklearn_oracle(reference, labels, None, 30, 5)
    for block_bytes in (2**28, 2 * 1024 * 1024 * itemsize):  # tiles of 2560, or of 1024 points
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


def test_reference_prepared_tile_by_tile_matches_sklearn(rng, monkeypatch, backend):
    """A reference larger than block_bytes is prepared tile by tile, in both tiled paths."""
    import pdlib.knn as knn

    monkeypatch.setattr(knn, "TILE", 512)
    reference = rng.standard_normal((4500, 128)) + 2.0
    labels = rng.integers(0, 3, len(reference))
    queries = rng.standard_normal((200, 128)) + 2.0
    assert 2 * reference.nbytes > 2**22  # not copied: prepared as it is used
    assert knn._symmetric_width(len(reference), 2**22, 8) == 512
    assert knn._symmetric_width(len(reference), 2**20, 8) == 256  # below TILE: block_bytes bounds the tiles
    _, _, expected = sklearn_oracle(reference, labels, queries, 5, 3)
    np.testing.assert_array_equal(knn_neighbours(reference, queries, k=5, device="cpu", block_bytes=2**22), expected)
    _, _, expected = sklearn_oracle(reference, labels, None, 5, 3)
    np.testing.assert_array_equal(knn_neighbours(reference, None, k=5, device="cpu", block_bytes=2**22), expected)
    np.testing.assert_array_equal(knn_neighbours(reference, None, k=5, device="cpu", block_bytes=2**20), expected)
    np.testing.assert_array_equal(knn_neighbours(reference, None, k=5, device="cpu", block_bytes=2**14), expected)


def test_scan_kernel_falls_back_without_a_compiler(tmp_path, monkeypatch):
    """No working compiler: a warning, the torch path, and the same neighbours."""
    monkeypatch.setenv("PDLIB_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.warns(RuntimeWarning, match="could not compile"):
        assert pdlib._scan._compile() is False
    assert not list(tmp_path.rglob("*.so"))
    monkeypatch.setenv("PDLIB_KNN_KERNEL", "torch")
    assert pdlib._scan._compile() is False


def _neighbours_on_pool(scores):
    """The rows of ``scores`` scanned in two tasks on the scan thread pool, as the k-NN does."""
    reservoirs = pdlib._scan.Reservoirs(scores.shape[0], 5, torch.float32)
    half = scores.shape[0] // 2
    pdlib._scan.run_tasks([lambda: pdlib._scan.scan_rows(scores[:half], reservoirs, 0, 0, False),
                           lambda: pdlib._scan.scan_rows(scores[half:], reservoirs, half, 0, False)])
    return np.sort(reservoirs.result()[1].numpy(), axis=1)


def _scan_in_child(scores, queue):
    queue.put(_neighbours_on_pool(scores))


def test_compiled_scans_work_in_a_forked_child(rng):
    """A child forked after the scans' thread pool started gets a pool of its own instead of hanging.

    (Only the scans run in the child: torch's own OpenMP GEMM is not fork-safe once used.)
    """
    import multiprocessing

    _require_compiled_scans()
    scores = torch.as_tensor(rng.standard_normal((300, 200)), dtype=torch.float32)
    expected = _neighbours_on_pool(scores)  # starts the pool in this process
    np.testing.assert_array_equal(expected, np.sort(_top_k_oracle(scores.numpy(), 5)[1], axis=1))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_scan_in_child, args=(scores, queue))
    child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    np.testing.assert_array_equal(got, expected)
