"""Subsets, class selections, 90:10 splits and label noise: the paper's data protocols,
deterministic given a seed."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch

from pdlib._checks import as_labels, check_fraction, check_positive_int
from pdlib.datatypes import LabelledImages

__all__ = ["select_classes", "stratified_subset", "corrupt_labels", "train_val_split"]


def select_classes(data: LabelledImages, classes: Sequence[int]) -> LabelledImages:
    """Keep the examples of ``classes`` (distinct indices) and relabel ``classes[j]`` as ``j``, in
    original order.

    Returns a :class:`LabelledImages` with the chosen classes' ``class_names``.
    """
    if not isinstance(data, LabelledImages):
        raise TypeError(f"data must be a LabelledImages, got {type(data).__name__}")
    n_classes = len(data.class_names)
    classes = as_labels(classes, "classes", n_classes=n_classes)
    if len(np.unique(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {classes.tolist()}")
    new_label = np.full(n_classes, -1, dtype=np.int64)
    new_label[classes] = np.arange(len(classes))
    relabelled = torch.from_numpy(new_label)[data.labels]
    keep = relabelled >= 0
    return LabelledImages(
        data.inputs[keep], relabelled[keep], tuple(data.class_names[c] for c in classes), data.name
    )


def stratified_subset(labels, n: int, seed: int) -> np.ndarray:
    """Sorted int64 indices (n,) of ``n`` of ``labels`` (N,), drawn without replacement per class
    (seeded).

    Each class gets ``n * count / N`` rounded down; the rest go to the largest remainders (ties to
    the smaller class).
    """
    labels = as_labels(labels, "labels")
    n = check_positive_int(n, "n")
    if n > len(labels):
        raise ValueError(f"n={n} is larger than the number of labels ({len(labels)})")
    classes, counts = np.unique(labels, return_counts=True)
    # Integer arithmetic keeps the largest-remainder rounding exact.
    quota, remainder = np.divmod(n * counts, len(labels))
    quota[np.argsort(-remainder, kind="stable")[: n - quota.sum()]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, quota, strict=False)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def corrupt_labels(
    labels,
    rate: float,
    n_classes: int,
    seed: int,
    *,
    pair: tuple[int, int] | None = None,
    targets=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Replace a fraction of labels by another class: uniform noise, flips within a pair of
    classes, or asymmetric noise (each class flipped to one fixed other class).

    Parameters
    ----------
    labels : array-like or torch.Tensor of int, shape (n,)
        Class indices in ``[0, n_classes)``; not modified.
    rate : float
        In ``[0, 1]``. Uniform: exactly ``round(rate * n)`` labels change, each to one of the other
        classes at random. ``pair = (a, b)``: ``round(rate * n_a)`` of class ``a`` become ``b`` and
        ``round(rate * n_b)`` of ``b`` become ``a``. ``targets``: ``round(rate * n_c)`` of each
        class ``c`` become ``targets[c]`` (none where ``targets[c] == c``).
    n_classes : int
        At least 2.
    seed : int
    pair : (int, int), optional
    targets : sequence of int, shape (n_classes,), optional
        The class each class is flipped to (asymmetric noise); not together with ``pair``.

    Returns
    -------
    new_labels : ndarray of int64, shape (n,)
    corrupted : ndarray of bool, shape (n,)

    Examples
    --------
    >>> new, changed = corrupt_labels([0, 0, 1, 1, 2, 2], 0.5, 3, seed=0, pair=(0, 1))
    >>> int(changed.sum()), sorted(set(new[changed].tolist()) | set(new[~changed].tolist()))
    (2, [0, 1, 2])
    >>> corrupt_labels([0, 0, 1, 1, 2, 2], 0.5, 3, seed=0, targets=[1, 2, 0])[0].tolist()
    [0, 1, 1, 2, 2, 0]
    """
    if (
        isinstance(n_classes, numbers.Integral)
        and not isinstance(n_classes, bool)
        and n_classes < 2
    ):
        raise ValueError(f"n_classes must be >= 2 to draw a different class, got {n_classes}")
    labels = as_labels(labels, "labels", n_classes=n_classes)
    rate = check_fraction(rate, "rate", closed=True)
    rng = np.random.default_rng(seed)
    new_labels = labels.copy()  # as_labels may return a view of the caller's array
    if targets is not None:
        if pair is not None:
            raise ValueError("give pair or targets, not both")
        targets = as_labels(list(targets), "targets", n_classes=n_classes)
        if len(targets) != n_classes:
            raise ValueError(f"targets needs one class per class ({n_classes}); got {len(targets)}")
        for source, target in enumerate(targets.tolist()):
            members = np.flatnonzero(labels == source)
            if target != source:
                chosen = rng.choice(members, size=round(rate * len(members)), replace=False)
                new_labels[chosen] = target
    elif pair is None:
        which = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
        # A shift of 1 .. n_classes-1 modulo n_classes is uniform over the other classes.
        new_labels[which] = (
            labels[which] + rng.integers(1, n_classes, size=len(which))
        ) % n_classes
    else:
        a, b = as_labels(list(pair), "pair", n_classes=n_classes)
        if a == b:
            raise ValueError(f"pair must name two different classes, got {pair}")
        for source, target in ((a, b), (b, a)):
            members = np.flatnonzero(labels == source)
            new_labels[rng.choice(members, size=round(rate * len(members)), replace=False)] = target
    return new_labels, new_labels != labels


def train_val_split(n: int, seed: int, train_fraction: float = 0.9) -> np.ndarray:
    """Seeded (n,) bool mask of the training split: exactly ``round(train_fraction * n)`` True."""
    n = check_positive_int(n, "n")
    train_fraction = check_fraction(train_fraction, "train_fraction", closed=False)
    in_train = np.zeros(n, dtype=bool)
    in_train[np.random.default_rng(seed).permutation(n)[: round(train_fraction * n)]] = True
    return in_train
