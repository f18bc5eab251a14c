"""From a trained model to every probe's embedding, k-NN prediction and the prediction depth.

Forward hooks copy each probe's activation into a preallocated float32 array, so the network runs
once per batch for all probes; when the embeddings would not fit in ``memory_bytes`` the probes
are split into consecutive groups, one pass per group.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pdlib._checks import as_input_batch, as_labels, check_k
from pdlib._progress import progress_bar
from pdlib.knn import DEFAULT_K, knn_predict
from pdlib.metrics import prediction_depth, probe_accuracy, undecided_depth
from pdlib.models import INPUT, SOFTMAX, probe_points

__all__ = [
    "Captured",
    "capture_embeddings",
    "probe_groups",
    "captures",
    "ProbeResult",
    "probe_model",
    "model_device",
    "eval_mode",
    "DEFAULT_MEMORY_BYTES",
]

#: Embedding memory one capture pass may fill (every input set, all probes of the pass).
DEFAULT_MEMORY_BYTES = 4 * 2**30


class Captured(NamedTuple):
    """Embeddings (n, d_probe) float32 keyed by probe name, in probe order, and logits (n,
    n_classes)."""

    embeddings: dict[str, np.ndarray]
    logits: np.ndarray


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-free model)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in eval mode for the block, then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def capture_embeddings(
    model: nn.Module,
    inputs,
    probes=None,
    *,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> Captured:
    """Run ``model`` once over ``inputs`` (eval mode) and keep every probe's embedding.

    Parameters
    ----------
    model : nn.Module
        With ``probe_points`` (see :func:`pdlib.make_model`) or with ``probes`` given.
    inputs : Tensor or ndarray of float32, shape (n, ...)
        Already normalised.
    probes : sequence of str, optional
        ``"input"``, module names and ``"softmax"``; defaults to ``model.probe_points``.
    batch_size : int
    device : str or torch.device, optional
        Defaults to the model's device; the model is not moved.
    progress : bool, optional
        Progress bar (``None``: on unless ``PDLIB_QUIET`` is set).

    Returns
    -------
    Captured

    Examples
    --------
    >>> from pdlib import make_model
    >>> model = make_model("mlp", 3, 1, 4, width=5, seed=0)
    >>> captured = capture_embeddings(model, torch.zeros(2, 1, 4, 4))
    >>> {name: e.shape for name, e in captured.embeddings.items()}["hidden7"], captured.logits.shape
    ((2, 5), (2, 3))
    """
    names = probe_points(model, probes)
    inputs = as_input_batch(inputs)
    device = model_device(model) if device is None else torch.device(device)
    n = inputs.shape[0]
    embeddings: dict[str, np.ndarray] = {}
    logits: np.ndarray | None = None
    rows = slice(0, 0)

    def store(name: str, activation: torch.Tensor) -> None:
        flat = activation.detach().flatten(1).to("cpu", torch.float32).numpy()
        if name not in embeddings:
            embeddings[name] = np.empty((n, flat.shape[1]), dtype=np.float32)
        embeddings[name][rows] = flat

    modules = dict(model.named_modules())
    # The default argument binds each name now, not when the hook runs.
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: store(name, out))
        for name in names
        if name not in (INPUT, SOFTMAX)
    ]
    try:
        with eval_mode(model), torch.inference_mode():
            for start in progress_bar(range(0, n, batch_size), desc="capture", enabled=progress):
                rows = slice(start, min(start + batch_size, n))
                batch = inputs[rows].to(device, non_blocking=True)
                if INPUT in names:
                    store(INPUT, batch)
                out = model(batch)
                if SOFTMAX in names:
                    store(SOFTMAX, torch.softmax(out.float(), dim=1))
                if logits is None:
                    logits = np.empty((n, out.shape[1]), dtype=np.float32)
                logits[rows] = out.detach().to("cpu", torch.float32).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return Captured({name: embeddings[name] for name in names}, logits)


def probe_groups(
    model: nn.Module, sample, names, n_points: int, memory_bytes: int
) -> list[tuple[str, ...]]:
    """Consecutive probes whose float32 embeddings of ``n_points`` inputs fit in ``memory_bytes``
    together."""
    dims = {
        name: e.shape[1]
        for name, e in capture_embeddings(
            model, sample[:2], names, progress=False
        ).embeddings.items()
    }
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


def captures(
    model: nn.Module,
    input_sets,
    probes=None,
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    batch_size: int = 500,
    device=None,
    progress: bool | None = None,
) -> Iterator[tuple[tuple[str, ...], list[Captured]]]:
    """Yield ``(group, [Captured of each input set])`` probe group by probe group, within
    ``memory_bytes``."""
    names = probe_points(model, probes)
    input_sets = [as_input_batch(inputs, "input set") for inputs in input_sets]
    n_points = sum(inputs.shape[0] for inputs in input_sets)
    for group in probe_groups(model, input_sets[0], names, n_points, memory_bytes):
        yield (
            group,
            [
                capture_embeddings(
                    model, inputs, group, batch_size=batch_size, device=device, progress=progress
                )
                for inputs in input_sets
            ],
        )


@dataclass(frozen=True)
class ProbeResult:
    """Per-probe k-NN predictions, network predictions and prediction depth.

    Training points are probed leave-one-out, query points against the whole training split.
    ``*_probe_predictions`` (n_probes, n) int64; ``*_votes`` (n_probes, n, n_classes) uint8 (uint16
    if k > 255); ``*_network_predictions`` and ``*_depth`` (n,) int64; ``*_logits`` (n, n_classes)
    float32; ``*_undecided`` (n,) bool: no depth, the softmax probe disagrees with the network
    (their ``*_depth`` is ``n_probes - 1``, see :func:`pdlib.metrics.prediction_depth`);
    ``seconds``: wall time of the capture and of the k-NN probes.
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
    train_undecided: np.ndarray
    query_undecided: np.ndarray
    seconds: dict = field(default_factory=dict)

    def probe_accuracy(self, split: str, labels) -> np.ndarray:
        """Fraction of ``split``'s points ("train" or "query") each probe classifies as
        ``labels``."""
        return probe_accuracy(getattr(self, f"{split}_probe_predictions"), labels)


def probe_model(
    model: nn.Module,
    train_inputs,
    train_labels,
    query_inputs,
    *,
    k: int = DEFAULT_K,
    probes=None,
    batch_size: int = 500,
    device: str | torch.device | None = None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    progress: bool | None = None,
) -> ProbeResult:
    """Prediction depth of training points (leave-one-out) and of query points.

    The k-NN support set is the training split at each probe, with the labels the model was trained
    on (corrupted ones included).

    Parameters
    ----------
    model : nn.Module
        A trained network with ``probe_points`` (or give ``probes``).
    train_inputs : Tensor, shape (n_train, ...)
    train_labels : array-like of int, shape (n_train,)
    query_inputs : Tensor, shape (n_query, ...)
        Validation or test points.
    k : int
        Neighbours per probe; 30 in the paper.
    probes, batch_size, device, progress
        See :func:`capture_embeddings`; ``device`` is also used for the k-NN.
    memory_bytes : int
        Budget for the embeddings held at once.

    Returns
    -------
    ProbeResult
    """
    train_inputs, query_inputs = (
        as_input_batch(train_inputs, "train_inputs"),
        as_input_batch(query_inputs, "query_inputs"),
    )
    labels = as_labels(
        train_labels, "train_labels", length=train_inputs.shape[0], length_name="train_inputs"
    )
    check_k(k, train_inputs.shape[0], leave_one_out=True)
    device = model_device(model) if device is None else torch.device(device)
    out = {"train": ({}, {}), "query": ({}, {})}  # split -> (predictions, votes) per probe
    seconds = {"capture": 0.0, "knn": 0.0}
    start = time.perf_counter()
    for group, (train, query) in captures(
        model,
        [train_inputs, query_inputs],
        probes,
        memory_bytes=memory_bytes,
        batch_size=batch_size,
        device=device,
        progress=progress,
    ):
        seconds["capture"] += time.perf_counter() - start
        n_classes = train.logits.shape[1]
        if labels.max() >= n_classes:
            raise ValueError(
                f"train_labels contains class {labels.max()} but the model has {n_classes} outputs"
            )
        start = time.perf_counter()
        for name in group:
            for split, queries in (("train", None), ("query", query.embeddings[name])):
                out[split][0][name], out[split][1][name] = knn_predict(
                    train.embeddings[name], labels, queries, k=k, n_classes=n_classes, device=device
                )
        seconds["knn"] += time.perf_counter() - start
        logits = {"train": train.logits, "query": query.logits}
        start = time.perf_counter()
    names = tuple(out["train"][0])
    vote_dtype = np.uint8 if k <= np.iinfo(np.uint8).max else np.uint16
    fields = {}
    for split, (predictions, votes) in out.items():
        network = logits[split].argmax(axis=1).astype(np.int64)
        stacked = np.stack([predictions[name] for name in names])
        fields.update(
            {
                f"{split}_probe_predictions": stacked,
                f"{split}_votes": np.stack([votes[name] for name in names]).astype(vote_dtype),
                f"{split}_network_predictions": network,
                f"{split}_logits": logits[split],
                f"{split}_depth": prediction_depth(stacked, network),
                f"{split}_undecided": undecided_depth(stacked, network),
            }
        )
    return ProbeResult(probe_names=names, seconds=seconds, **fields)
