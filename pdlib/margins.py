"""Output and input margins, and the 0-Hinge loss (Sections 3 and 5 of the paper).

The input margin is the linearised input-space distance to the nearest decision boundary of the
predicted class (exact for a linear model); the 0-Hinge loss gives no reward for confidence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pdlib._checks import as_array, as_input_batch, check_positive_int
from pdlib.probes import eval_mode, model_device

__all__ = ["output_margin", "input_margin", "zero_hinge_loss"]


def output_margin(logits) -> np.ndarray:
    """Largest logit minus the second-largest, per point: finite (n, n_classes >= 2) -> (n,)
    float64.

    >>> output_margin([[2.0, 0.5, 1.0], [0.0, 3.0, 3.0]]).tolist()
    [1.0, 0.0]
    """
    array = as_array(logits, "logits")
    if array.dtype.kind not in "fiu":
        raise TypeError(f"logits must hold numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"logits must be 2-D (n, n_classes), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"logits is empty: shape {array.shape}")
    if array.shape[1] < 2:
        raise ValueError(f"logits must have at least 2 classes (columns), got shape {array.shape}")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise ValueError("logits contains NaN or infinite values")
    top_two = np.partition(array, -2, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def input_margin(
    model: nn.Module, inputs, *, batch_size: int = 256, device: str | torch.device | None = None
) -> np.ndarray:
    """Linearised distance in input space to the nearest decision boundary of the prediction.

    ``gamma(x) = min over j != i of |z_i - z_j| / ||grad_x (z_i - z_j)||_2`` with ``i = argmax z``;
    exact for an affine model. Eval mode (restored afterwards); the parameters' ``.grad`` are left
    untouched. A batch holds its logits' Jacobian (``batch_size * n_classes * prod(input_shape)``)
    twice.

    Parameters
    ----------
    model : nn.Module
        Maps (b, ...) to logits (b, n_classes), ``n_classes >= 2``.
    inputs : Tensor or ndarray of float, shape (n, ...)
        Normalised; cast to the dtype of the model's parameters.
    batch_size : int
    device : str or torch.device, optional
        Defaults to the model's device; the model is not moved.

    Returns
    -------
    ndarray of float64, shape (n,)
        In input units; 0 where the top two logits tie, ``+inf`` where no logit difference has a
        gradient.

    Examples
    --------
    >>> layer = nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = layer.weight.copy_(torch.eye(2))
    >>> round(float(input_margin(layer, torch.tensor([[3.0, 0.0]]))[0]), 4)  # 3 / sqrt(2)
    2.1213
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = as_input_batch(
        inputs if isinstance(inputs, torch.Tensor) else as_array(inputs, "inputs")
    )
    batch_size = check_positive_int(batch_size, "batch_size")
    device = model_device(model) if device is None else torch.device(device)
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = parameter.dtype if parameter is not None else inputs.dtype
    n = inputs.shape[0]
    margins = np.empty(n, dtype=np.float64)
    # inference_mode(False): a caller's inference_mode would otherwise disable autograd.
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            # A fresh leaf: the caller's tensor is never marked as requiring grad.
            batch = inputs[rows].to(device, dtype).detach().clone().requires_grad_(True)
            margins[rows] = _batch_input_margin(model, batch)
    if np.isnan(margins).any():
        raise ValueError("the model produced NaN logits or gradients for some inputs")
    return margins


def _batch_input_margin(model: nn.Module, batch: torch.Tensor) -> np.ndarray:
    """Input margins (b,) float64 of one batch already on the device and requiring grad."""
    logits = model(batch)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0] or logits.shape[1] < 2:
        raise ValueError(
            f"model output must have shape (batch, n_classes) with n_classes >= 2; "
            f"got {tuple(logits.shape)} for a batch of {batch.shape[0]}"
        )
    b, n_classes = logits.shape
    # Row c holds d z_c / dx; the batch sum of z_c gives each point's own gradient (eval mode: no
    # interaction).
    jacobian = torch.zeros((b, n_classes, batch[0].numel()), dtype=batch.dtype, device=batch.device)
    if logits.requires_grad:
        for c in range(n_classes):
            (grad,) = torch.autograd.grad(
                logits[:, c].sum(), batch, retain_graph=c < n_classes - 1, allow_unused=True
            )
            if grad is not None:  # None: z_c does not depend on the input
                jacobian[:, c] = grad.reshape(b, -1)
    with torch.no_grad():
        work = torch.promote_types(logits.dtype, torch.float32)
        logits, jacobian = logits.detach().to(work), jacobian.to(work)
        rows = torch.arange(b, device=logits.device)
        predicted = logits.argmax(dim=1)
        gap = (logits[rows, predicted, None] - logits).abs()  # (b, n_classes)
        # Gradient of z_i - z_j for every j at once: J_i - J_j.
        norm = torch.linalg.vector_norm(jacobian[rows, predicted, None, :] - jacobian, dim=2)
        ratio = torch.where(norm > 0, gap / norm, torch.full_like(gap, float("inf")))
        ratio[rows, predicted] = float("inf")  # j = i is not a boundary
        return ratio.min(dim=1).values.to("cpu", torch.float64).numpy()


def zero_hinge_loss(logits: torch.Tensor, targets) -> torch.Tensor:
    """The 0-Hinge loss: batch mean of ``sum over j != y of max(0, z_j - z_y)`` (ties count as
    correct).

    The paper's text prints ``max(0, z_i - z_j)``, read as a sign slip. ``logits`` (n, n_classes)
    float Tensor, ``targets`` (n,) int -> scalar Tensor on ``logits.device``.

    >>> logits = torch.tensor([[2.0, 1.0, 3.0], [0.0, 5.0, 1.0]])
    >>> zero_hinge_loss(logits, torch.tensor([0, 1])).item()  # (1 + 0) / 2
    0.5
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(
            "logits must have shape (n, n_classes) with n >= 1 and n_classes >= 2, "
            f"got {tuple(logits.shape)}"
        )
    if not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(as_array(targets, "targets"))
    if targets.ndim != 1:
        raise ValueError(f"targets must be 1-D (n,), got shape {tuple(targets.shape)}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer class indices, got {targets.dtype}")
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets has {targets.shape[0]} entries but logits has {logits.shape[0]} rows"
        )
    targets = targets.to(logits.device, torch.int64)
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(
            f"targets must be class indices in [0, {logits.shape[1]}), "
            f"found range [{int(targets.min())}, {int(targets.max())}]"
        )
    true_logit = logits.gather(1, targets[:, None])
    # The j = y term is relu(0) = 0 with zero gradient, so no mask is needed.
    return torch.relu(logits - true_logit).sum(dim=1).mean()
