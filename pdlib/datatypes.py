"""The types every source of labelled images shares: built-in datasets (:mod:`pdlib.data`), arrays
registered by the audit (:mod:`pdlib.userdata`) and class subsets (:mod:`pdlib.sampling`).

:mod:`pdlib.data` re-exports each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = ["DatasetInfo", "LabelledImages", "DatasetNotFoundError", "FILE_PREFIX"]

#: Names of datasets made from arrays (:func:`pdlib.userdata.register_arrays`) start with this.
FILE_PREFIX = "file:"


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before loading it."""

    name: str  # accepted by load_dataset
    n_classes: int  # labels are 0 .. n_classes - 1
    in_channels: int  # image channels C
    image_size: int  # height = width, in pixels
    class_names: tuple[str, ...]  # name of each label
    # Per-channel mean and std of the training images scaled to [0, 1], for normalising.
    mean: tuple[float, ...]
    std: tuple[float, ...]


class LabelledImages(NamedTuple):
    """A labelled set of images."""

    # (n, C, H, W) float32, normalised per channel with the dataset's mean and std
    inputs: torch.Tensor
    labels: torch.Tensor  # (n,) int64 class indices
    class_names: tuple[str, ...]  # name of each class index
    name: str  # dataset name


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """The dataset's files are neither on disk nor downloadable; the message says what to put
    where."""
