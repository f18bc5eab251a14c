"""One call from a trained model to per-probe k-NN predictions and prediction depth."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pdlib._checks import as_labels, check_k
from pdlib.capture import capture_embeddings, model_device
from pdlib.depth import prediction_depth
from pdlib.knn import knn_predict
from pdlib.metrics import probe_accuracy
from pdlib.models import probe_points

__all__ = ["probe_model", "ProbeResult", "DEFAULT_MEMORY_BYTES"]

#: Embedding memory one capture pass may fill (train + query, all probes of the pass).
DEFAULT_MEMORY_BYTES = 4 * 2**30


@dataclass(frozen=True)
class ProbeResult:
    """Per-probe k-NN predictions, network predictions and prediction depth.

    ``n_probes`` probes (input first, softmax last), ``n_train`` support points and
    ``n_query`` query points. Training points are probed leave-one-out.

    Attributes
    ----------
    probe_names : tuple of str, length n_probes
    train_probe_predictions, query_probe_predictions : ndarray of int64, shape (n_probes, n)
    train_votes, query_votes : ndarray of uint8 (uint16 if k > 255), shape (n_probes, n, n_classes)
        Neighbour counts per class; each row sums to ``k``.
    train_network_predictions, query_network_predictions : ndarray of int64, shape (n,)
    train_logits, query_logits : ndarray of float32, shape (n, n_classes)
    train_depth, query_depth : ndarray of int64, shape (n,)
        Prediction depth, in ``0 .. n_probes - 1``.
    seconds : dict of str to float
        Wall time of the capture and of the k-NN probes.
    """

    probe_names: tuple[str, ...]
    train_probe_predictions: np.ndarray
    train_votes: np.ndarray
    query_probe_predictions: np.ndarray
    query_votes: np.ndarray
    train_network_predictions: np.ndarray
    query_network_predictions: np.ndarray
    train_logits: np.ndarray
    query_logits: np.ndarray
    train_depth: np.ndarray
    query_depth: np.ndarray
    seconds: dict = field(default_factory=dict)

    def probe_accuracy(self, split: str, labels) -> np.ndarray:
        """Fraction of points each probe classifies as ``labels``, shape (n_probes,)."""
        return probe_accuracy(getattr(self, f"{split}_probe_predictions"), labels)


def _probe_groups(model, names, sample, n_points, memory_bytes) -> list[tuple[str, ...]]:
    """Consecutive probes whose embeddings for ``n_points`` fit in ``memory_bytes`` together."""
    dims = {name: emb.shape[1] for name, emb in
            capture_embeddings(model, sample, names, progress=False).embeddings.items()}
    groups, current, used = [], [], 0
    for name in names:
        size = 4 * dims[name] * n_points
        if current and used + size > memory_bytes:
            groups.append(tuple(current))
            current, used = [], 0
        current.append(name)
        used += size
    groups.append(tuple(current))
    return groups


def probe_model(
    model: nn.Module,
    train_inputs,
    train_labels,
    query_inputs,
    *,
    k: int = 30,
    probes=None,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    progress: bool | None = None,
) -> ProbeResult:
    """Prediction depth of training points (leave-one-out) and of query points.

    The k-NN support set is the model's training data at each probe, labelled with
    the labels the model was trained on (corrupted ones included, where labels were
    corrupted). Every probe of a pass is captured in one forward pass per batch; the
    probes are split over several passes only when their embeddings would exceed
    ``memory_bytes``.

    Parameters
    ----------
    model : nn.Module
        A trained network with ``probe_points`` (or give ``probes``).
    train_inputs : Tensor, shape (n_train, ...)
        The inputs the model was trained on (its training split).
    train_labels : array-like of int, shape (n_train,)
        The labels it was trained on.
    query_inputs : Tensor, shape (n_query, ...)
        Points to score against the training split (validation or test points).
    k : int
        Neighbours per probe; 30 in the paper.
    probes : sequence of str, optional
        Probe names, defaults to ``model.probe_points``.
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Defaults to the model's device; used for the forward passes and the k-NN.
    memory_bytes : int
        Budget for the embeddings held at once, in bytes.
    progress : bool, optional
        Progress bars (``None``: on unless ``PDLIB_QUIET`` is set).

    Returns
    -------
    ProbeResult
    """
    names = probe_points(model, probes)
    train_inputs, query_inputs = torch.as_tensor(train_inputs), torch.as_tensor(query_inputs)
    labels = as_labels(train_labels, "train_labels", length=train_inputs.shape[0], length_name="train_inputs")
    check_k(k, train_inputs.shape[0], leave_one_out=True)
    if query_inputs.ndim < 2 or query_inputs.shape[0] == 0:
        raise ValueError(f"query_inputs must be a non-empty batch, got shape {tuple(query_inputs.shape)}")
    device = model_device(model) if device is None else torch.device(device)
    n_train, n_query = train_inputs.shape[0], query_inputs.shape[0]
    groups = _probe_groups(model, names, train_inputs[:2], n_train + n_query, memory_bytes)

    train_predictions, query_predictions, train_votes, query_votes = {}, {}, {}, {}
    seconds = {"capture": 0.0, "knn": 0.0}
    for group in groups:
        start = time.perf_counter()
        train = capture_embeddings(model, train_inputs, group, batch_size=batch_size, device=device, progress=progress)
        query = capture_embeddings(model, query_inputs, group, batch_size=batch_size, device=device, progress=progress)
        seconds["capture"] += time.perf_counter() - start
        n_classes = train.logits.shape[1]
        if labels.max() >= n_classes:
            raise ValueError(f"train_labels contains class {labels.max()} but the model has {n_classes} outputs")
        start = time.perf_counter()
        for name in group:
            train_predictions[name], train_votes[name] = knn_predict(
                train.embeddings[name], labels, None, k=k, n_classes=n_classes, device=device)
            query_predictions[name], query_votes[name] = knn_predict(
                train.embeddings[name], labels, query.embeddings[name], k=k, n_classes=n_classes, device=device)
        seconds["knn"] += time.perf_counter() - start
        train_logits, query_logits = train.logits, query.logits
        del train, query

    vote_dtype = np.uint8 if k <= np.iinfo(np.uint8).max else np.uint16
    stack = lambda per_probe, dtype: np.stack([per_probe[name] for name in names]).astype(dtype)  # noqa: E731
    train_network = train_logits.argmax(axis=1).astype(np.int64)
    query_network = query_logits.argmax(axis=1).astype(np.int64)
    train_probe = stack(train_predictions, np.int64)
    query_probe = stack(query_predictions, np.int64)
    return ProbeResult(
        probe_names=names,
        train_probe_predictions=train_probe,
        train_votes=stack(train_votes, vote_dtype),
        query_probe_predictions=query_probe,
        query_votes=stack(query_votes, vote_dtype),
        train_network_predictions=train_network,
        query_network_predictions=query_network,
        train_logits=train_logits,
        query_logits=query_logits,
        train_depth=prediction_depth(train_probe, train_network),
        query_depth=prediction_depth(query_probe, query_network),
        seconds=seconds,
    )
