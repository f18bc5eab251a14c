"""pdlib: prediction depth and example difficulty, after Baldock, Maennel & Neyshabur (NeurIPS
2021).

Public API: data (:func:`load_dataset`, :func:`download_datasets`, :func:`select_classes`,
:func:`stratified_subset`, :func:`corrupt_labels`, :func:`train_val_split`); models and training
(:func:`make_model`, :func:`train_model`, :class:`TrainConfig`); probes (:func:`capture_embeddings`,
:func:`knn_predict`, :class:`KNNProbe`, :func:`probe_model`); metrics (:mod:`pdlib.metrics`:
:func:`prediction_depth`, :func:`consistency_score`, :func:`consensus_consistency`, ...); margins
(:func:`output_margin`, :func:`input_margin`, :func:`zero_hinge_loss`); ensembles
(:func:`run_ensemble`, :func:`ensemble_statistics`); label errors (:func:`audit`, ``python -m pdlib
audit``).
"""

from pdlib.data import (
    DATASETS,
    DatasetNotFoundError,
    LabelledImages,
    download_datasets,
    load_dataset,
)
from pdlib.ensembles import Ensemble, ensemble_statistics, run_ensemble
from pdlib.knn import KNNProbe, knn_neighbours, knn_predict
from pdlib.margins import input_margin, output_margin, zero_hinge_loss
from pdlib.metrics import (
    consensus_class,
    consensus_consistency,
    consistency_score,
    iteration_learned,
    prediction_depth,
    rescale_iteration,
    split_means,
)
from pdlib.models import ARCHITECTURES, make_model, probe_points
from pdlib.probes import Captured, ProbeResult, capture_embeddings, probe_model
from pdlib.sampling import corrupt_labels, select_classes, stratified_subset, train_val_split
from pdlib.training import TrainConfig, TrainResult, predict, train_model

__version__ = "0.2.0"


__all__ = [
    "ARCHITECTURES",
    "AuditInputError",
    "Captured",
    "DATASETS",
    "DatasetNotFoundError",
    "Ensemble",
    "KNNProbe",
    "LabelledImages",
    "ProbeResult",
    "TrainConfig",
    "TrainResult",
    "audit",
    "capture_embeddings",
    "consensus_class",
    "consensus_consistency",
    "consistency_score",
    "corrupt_labels",
    "download_datasets",
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

# Last, so that the name pdlib.audit is the function, not its module.
from pdlib.audit import AuditInputError, audit  # noqa: E402
