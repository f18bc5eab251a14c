"""pdlib.sampling: class selection, stratified subsets, label noise (uniform and within a pair) and
90:10 splits, each deterministic given its seed, against loops where a rule is spelled out."""

import numpy as np
import pytest
import torch

from pdlib.data import LabelledImages
from pdlib.sampling import corrupt_labels, select_classes, stratified_subset, train_val_split


def test_select_classes_relabels_in_given_order():
    labels = torch.tensor([0, 1, 2, 3, 2, 1, 0])
    inputs = labels.float().view(-1, 1, 1, 1)
    data = LabelledImages(inputs, labels, ("a", "b", "c", "d"), "toy")
    chosen = select_classes(data, [2, 0])
    assert chosen.labels.tolist() == [1, 0, 0, 1] and chosen.inputs.flatten().tolist() == [
        0,
        2,
        2,
        0,
    ]
    assert chosen.class_names == ("c", "a") and chosen.name == "toy"
    assert chosen.labels.dtype == torch.int64


def test_stratified_subset_counts():
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    index = stratified_subset(labels, 100, seed=0)
    assert index.dtype == np.int64 and np.all(np.diff(index) > 0)
    assert np.bincount(labels[index]).tolist() == [50, 30, 20]
    # 2.5, 1.5, 1.0 -> floors 2, 1, 1; the one left over goes to the first of the tied remainders
    small = np.repeat([0, 1, 2], [5, 3, 2])
    assert np.bincount(small[stratified_subset(torch.as_tensor(small), 5, seed=1)]).tolist() == [
        3,
        1,
        1,
    ]


def test_stratified_subset_largest_remainder(rng):
    labels = rng.integers(0, 7, size=1000)
    counts = np.bincount(labels)
    for n in (1, 13, 500, 999, 1000):
        got = np.bincount(labels[stratified_subset(labels, n, seed=n)], minlength=7)
        exact = n * counts / len(labels)
        assert got.sum() == n and np.all(got >= np.floor(exact)) and np.all(got <= np.ceil(exact))


def test_stratified_subset_seeded():
    labels = np.arange(1000) % 10
    assert np.array_equal(stratified_subset(labels, 100, 3), stratified_subset(labels, 100, 3))
    assert not np.array_equal(stratified_subset(labels, 100, 3), stratified_subset(labels, 100, 4))


def test_corrupt_labels(rng):
    labels = rng.integers(0, 10, size=1001)
    original = labels.copy()
    new, corrupted = corrupt_labels(labels, 0.25, 10, seed=0)
    assert np.array_equal(labels, original)  # input untouched
    assert new.dtype == np.int64 and corrupted.dtype == bool
    assert corrupted.sum() == round(0.25 * 1001)
    assert np.all(new[corrupted] != labels[corrupted]) and np.array_equal(
        new[~corrupted], labels[~corrupted]
    )
    assert new.min() >= 0 and new.max() < 10
    again_new, again_corrupted = corrupt_labels(torch.as_tensor(labels), 0.25, 10, seed=0)
    assert np.array_equal(new, again_new) and np.array_equal(corrupted, again_corrupted)
    assert not np.array_equal(corrupt_labels(labels, 0.25, 10, seed=1)[1], corrupted)


def test_corrupt_labels_uses_every_other_class():
    new, _ = corrupt_labels(np.zeros(3000, dtype=np.int64), 1.0, 4, seed=0)
    counts = np.bincount(new, minlength=4)
    assert counts[0] == 0 and np.all(np.abs(counts[1:] - 1000) < 100)


def test_corrupt_labels_edge_rates():
    labels = np.arange(10) % 2
    assert not corrupt_labels(labels, 0.0, 2, seed=0)[1].any()
    new, corrupted = corrupt_labels(labels, 1.0, 2, seed=0)
    assert corrupted.all() and np.array_equal(new, 1 - labels)


def test_corrupt_labels_asymmetric_flips_each_class_to_its_target(rng):
    labels = rng.integers(0, 5, 1000)
    targets = [1, 2, 3, 4, 0]
    new, corrupted = corrupt_labels(labels, 0.3, 5, seed=3, targets=targets)
    for c in range(5):
        members = labels == c
        assert corrupted[members].sum() == round(0.3 * members.sum())
        assert (new[members & corrupted] == targets[c]).all()
    assert np.array_equal(new[~corrupted], labels[~corrupted])
    # a class mapped to itself keeps its labels
    _, flipped = corrupt_labels(labels, 0.3, 5, seed=3, targets=[0, 2, 3, 4, 0])
    assert not flipped[labels == 0].any() and flipped[labels != 0].any()
    assert np.array_equal(corrupt_labels(labels, 0.3, 5, seed=3, targets=targets)[0], new)


def test_corrupt_labels_refuses_bad_targets():
    with pytest.raises(ValueError, match="not both"):
        corrupt_labels([0, 1], 0.5, 2, seed=0, pair=(0, 1), targets=[1, 0])
    with pytest.raises(ValueError, match="one class per class"):
        corrupt_labels([0, 1], 0.5, 3, seed=0, targets=[1, 0])
    with pytest.raises(ValueError):
        corrupt_labels([0, 1], 0.5, 2, seed=0, targets=[1, 2])


def test_corrupt_labels_does_not_write_into_tensor():
    labels = torch.arange(20) % 5
    original = labels.clone()
    corrupt_labels(labels, 0.5, 5, seed=0)
    assert torch.equal(labels, original)


def test_train_val_split():
    in_train = train_val_split(1001, seed=0)
    assert (
        in_train.dtype == bool and in_train.shape == (1001,) and in_train.sum() == round(0.9 * 1001)
    )
    assert np.array_equal(in_train, train_val_split(1001, seed=0))
    assert not np.array_equal(in_train, train_val_split(1001, seed=1))
    assert train_val_split(10, seed=0, train_fraction=0.5).sum() == 5


def loop_quota(labels, n):
    """Largest-remainder quotas written out: floors, then one more to the largest remainders (ties:
    smaller class)."""
    classes = sorted(set(labels.tolist()))
    counts = {c: int((labels == c).sum()) for c in classes}
    quota = {c: n * counts[c] // len(labels) for c in classes}
    remainder = {c: n * counts[c] % len(labels) for c in classes}
    for c in sorted(classes, key=lambda c: (-remainder[c], c))[: n - sum(quota.values())]:
        quota[c] += 1
    return [quota[c] for c in classes]


@pytest.mark.parametrize("seed", range(5))
def test_stratified_subset_quotas_match_loop(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, rng.integers(2, 12), size=rng.integers(20, 400))
    for n in (1, len(labels) // 3, len(labels) - 1, len(labels)):
        index = stratified_subset(labels, n, seed)
        assert len(np.unique(index)) == n  # without replacement
        present = np.unique(labels)
        assert np.bincount(labels[index], minlength=labels.max() + 1)[
            present
        ].tolist() == loop_quota(labels, n)


def test_corrupt_labels_within_a_pair(rng):
    labels = rng.integers(0, 5, size=2000)
    new, corrupted = corrupt_labels(labels, 0.3, 5, seed=2, pair=(1, 3))
    assert set(np.unique(labels[corrupted]).tolist()) == {1, 3}  # only the pair is touched ...
    assert (new[corrupted] == 4 - labels[corrupted]).all()  # ... each flipped to the other
    np.testing.assert_array_equal(new[~corrupted], labels[~corrupted])
    for source in (1, 3):
        assert (corrupted & (labels == source)).sum() == round(0.3 * (labels == source).sum())
    again = corrupt_labels(labels, 0.3, 5, seed=2, pair=(1, 3))
    np.testing.assert_array_equal(again[0], new)
    # the pair's order does not matter for who can be flipped
    swapped, swapped_corrupted = corrupt_labels(labels, 0.3, 5, seed=2, pair=(3, 1))
    assert set(np.unique(labels[swapped_corrupted]).tolist()) == {1, 3}


def test_corrupt_labels_within_a_pair_at_full_rate():
    labels = np.array([0, 0, 1, 1, 2, 2])
    new, corrupted = corrupt_labels(labels, 1.0, 3, seed=0, pair=(0, 1))
    assert new.tolist() == [1, 1, 0, 0, 2, 2] and corrupted.tolist() == [True] * 4 + [False] * 2


# --- bad inputs -----------------------------------------------------------------------------------

TOY = LabelledImages(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 0]), ("a", "b", "c"), "toy")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: select_classes(TOY, [0, 3]), ValueError, "classes"),
        (lambda: select_classes(TOY, [1, 1]), ValueError, "classes must be distinct"),
        (lambda: select_classes(TOY, []), ValueError, "classes is empty"),
        (lambda: select_classes((TOY.inputs, TOY.labels), [0]), TypeError, "data"),
        (lambda: stratified_subset([0, 1, 1], 4, 0), ValueError, "n=4"),
        (lambda: stratified_subset([0, 1, 1], 0, 0), ValueError, "n must be >= 1"),
        (lambda: stratified_subset([], 1, 0), ValueError, "labels is empty"),
        (lambda: stratified_subset([0, -1], 1, 0), ValueError, "labels"),
        (lambda: stratified_subset([0.5, 1.0], 1, 0), TypeError, "labels"),
        (lambda: corrupt_labels([0, 1], -0.1, 2, 0), ValueError, r"rate must be in \[0, 1\]"),
        (lambda: corrupt_labels([0, 1], 1.5, 2, 0), ValueError, "rate"),
        (lambda: corrupt_labels([0, 1], "0.1", 2, 0), TypeError, "rate"),
        (lambda: corrupt_labels([0, 0], 0.5, 1, 0), ValueError, "n_classes must be >= 2"),
        (lambda: corrupt_labels([0, 2], 0.5, 2, 0), ValueError, "labels contains class 2"),
        (lambda: corrupt_labels([], 0.5, 2, 0), ValueError, "labels is empty"),
        (lambda: train_val_split(10, 0, 0.0), ValueError, r"train_fraction must be in \(0, 1\)"),
        (lambda: train_val_split(10, 0, 1.0), ValueError, "train_fraction"),
        (lambda: train_val_split(0, 0), ValueError, "n must be >= 1"),
        (lambda: train_val_split(2.5, 0), TypeError, "n must be an integer"),
        (
            lambda: corrupt_labels([0, 1, 2], 0.5, 3, 0, pair=(1, 1)),
            ValueError,
            "pair must name two different",
        ),
        (
            lambda: corrupt_labels([0, 1, 2], 0.5, 3, 0, pair=(1, 3)),
            ValueError,
            "pair contains class 3",
        ),
        (
            lambda: corrupt_labels([0, 1, 2], 0.5, 3, 0, pair=(-1, 2)),
            ValueError,
            "pair must be non-negative",
        ),
        (lambda: corrupt_labels([0, 1, 2], 0.5, 2.5, 0), TypeError, "n_classes must be an integer"),
        (lambda: stratified_subset([0, 1, 1], 2.0, 0), TypeError, "n must be an integer"),
        (lambda: select_classes(TOY, [0.5]), TypeError, "classes"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
