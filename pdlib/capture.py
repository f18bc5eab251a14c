"""Capture every probe's embedding in one forward pass per batch.

Forward hooks copy each probe's activation into a preallocated float32 array as the
batch goes through, so the network runs once per batch however many probes there are
(the public implementations run one pass per probed layer).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from pdlib._progress import progress_bar
from pdlib.models import INPUT, SOFTMAX, probe_points

__all__ = ["capture_embeddings", "Captured", "model_device", "eval_mode"]


class Captured(NamedTuple):
    """Embeddings at each probe plus the logits, for ``n`` inputs.

    Attributes
    ----------
    embeddings : dict of str to ndarray of float32, shape (n, d_probe)
        Flattened activations, keyed by probe name, in probe order.
    logits : ndarray of float32, shape (n, n_classes)
    """

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
        What the model takes, already normalised.
    probes : sequence of str, optional
        Probe names: ``"input"``, module names, ``"softmax"``; defaults to
        ``model.probe_points``. A subset keeps memory down for very wide models.
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Where to run; defaults to the model's device. The model is not moved.
    progress : bool, optional
        Show a progress bar (``None``: on unless ``PDLIB_QUIET`` is set).

    Returns
    -------
    Captured
        ``embeddings[name]`` of shape (n, d_name) float32 and ``logits`` (n, n_classes).
    """
    names = probe_points(model, probes)
    inputs = torch.as_tensor(inputs)
    if inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be a non-empty batch (n, ...), got shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point, got {inputs.dtype}")
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
    handles = []
    for name in names:
        if name not in (INPUT, SOFTMAX):
            # Default argument binds the name now, not at call time.
            handles.append(modules[name].register_forward_hook(lambda _m, _i, out, name=name: store(name, out)))
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
