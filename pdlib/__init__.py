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
    :func:`prediction_depth`; over an ensemble :func:`consistency_score` (Eq. 1),
    :func:`consensus_class`, :func:`consensus_consistency` (Eq. 2), :func:`iteration_learned`,
    :func:`rescale_iteration`, :func:`split_means` (PD_val and PD_train)
Margins
    :func:`output_margin`, :func:`input_margin` (linearised distance to the nearest
    decision boundary), :func:`zero_hinge_loss` (the 0-Hinge intervention)
Ensembles
    :func:`run_ensemble` (local, process pool or Ray; cached and resumable),
    :func:`ensemble_statistics` (streaming per-point statistics)
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
from pdlib.consistency import (
    consensus_class,
    consensus_consistency,
    consistency_score,
    iteration_learned,
    rescale_iteration,
    split_means,
)
from pdlib.depth import prediction_depth
from pdlib.ensembles import Ensemble, ensemble_statistics, run_ensemble
from pdlib.knn import KNNProbe, knn_neighbours, knn_predict
from pdlib.margins import input_margin, output_margin, zero_hinge_loss
from pdlib.models import ARCHITECTURES, make_model, probe_points
from pdlib.probing import ProbeResult, probe_model
from pdlib.training import TrainConfig, TrainResult, predict, train_model

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "Captured",
    "Ensemble",
    "DATASETS",
    "DatasetNotFoundError",
    "KNNProbe",
    "LabelledImages",
    "ProbeResult",
    "TrainConfig",
    "TrainResult",
    "capture_embeddings",
    "consensus_class",
    "consensus_consistency",
    "consistency_score",
    "corrupt_labels",
    "ensemble_statistics",
    "input_margin",
    "iteration_learned",
    "knn_neighbours",
    "knn_predict",
    "load_dataset",
    "make_model",
    "output_margin",
    "predict",
    "prediction_depth",
    "probe_model",
    "probe_points",
    "rescale_iteration",
    "run_ensemble",
    "select_classes",
    "split_means",
    "stratified_subset",
    "train_model",
    "train_val_split",
    "zero_hinge_loss",
]
