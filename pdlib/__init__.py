"""pdlib: prediction depth and example difficulty, after Baldock, Maennel & Neyshabur (NeurIPS 2021).

The public API:

Data
    :func:`load_dataset`, :func:`select_classes`, :func:`stratified_subset`,
    :func:`corrupt_labels`, :func:`train_val_split`
Models
    :func:`make_model` (``mlp``, ``vgg16``, ``resnet18``, each with ``probe_points``),
    :func:`train_model`, :class:`TrainConfig`
Probes
    :func:`capture_embeddings` (one forward pass per batch for every probe),
    :func:`knn_predict` and :class:`KNNProbe` (exact k-NN), :func:`probe_model`
Metrics
    :func:`prediction_depth`
"""

from pdlib.capture import Captured, capture_embeddings
from pdlib.data import (
    DATASETS,
    DatasetNotFoundError,
    LabelledImages,
    corrupt_labels,
    load_dataset,
    select_classes,
    stratified_subset,
    train_val_split,
)
from pdlib.depth import prediction_depth
from pdlib.knn import KNNProbe, knn_neighbours, knn_predict
from pdlib.models import ARCHITECTURES, make_model, probe_points
from pdlib.probing import ProbeResult, probe_model
from pdlib.training import TrainConfig, TrainResult, predict, train_model

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "Captured",
    "DATASETS",
    "DatasetNotFoundError",
    "KNNProbe",
    "LabelledImages",
    "ProbeResult",
    "TrainConfig",
    "TrainResult",
    "capture_embeddings",
    "corrupt_labels",
    "knn_neighbours",
    "knn_predict",
    "load_dataset",
    "make_model",
    "predict",
    "prediction_depth",
    "probe_model",
    "probe_points",
    "select_classes",
    "stratified_subset",
    "train_model",
    "train_val_split",
]
