"""Output and input margins, and the 0-Hinge loss (Sections 3 and 5 of the paper).

The output margin is read off the logits. The input margin is the linear approximation
of the distance in input space to the nearest decision boundary of the predicted class;
it is exact for a linear model. The 0-Hinge loss is zero as soon as a point is classified
correctly, so training with it gives no reward for confidence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pdlib._checks import as_array, check_positive_int
from pdlib.probes import eval_mode, model_device

__all__ = ["output_margin", "input_margin", "zero_hinge_loss"]


def output_margin(logits) -> np.ndarray:
    """Largest logit minus the second-largest logit, for each point.

    Parameters
    ----------
    logits : array-like or Tensor of numbers, shape (n, n_classes)
        Finite pre-softmax outputs, with ``n >= 1`` and ``n_classes >= 2``.

    Returns
    -------
    margin : ndarray of float64, shape (n,)
        Non-negative, in logit units; 0 where the top two logits tie.

    Examples
    --------
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
    model: nn.Module,
    inputs,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Linearised distance in input space to the nearest decision boundary of the prediction.

    For a point ``x`` with logits ``z`` and predicted class ``i = argmax z``,

    ``gamma(x) = min over j != i of |z_i - z_j| / ||grad_x (z_i - z_j)||_2``,

    the distance to the boundary between classes ``i`` and ``j`` if the network were
    replaced by its first-order Taylor expansion at ``x``. It is exact for a linear (affine)
    model. The model runs in eval mode (its previous mode is restored afterwards), and the
    gradient is taken with respect to the input only, so the parameters' ``.grad`` are left
    untouched.

    Each batch costs one forward pass and ``n_classes`` backward passes, and holds the
    Jacobian of the logits, ``batch_size * n_classes * prod(input_shape)`` numbers, twice;
    lower ``batch_size`` if that does not fit.

    Parameters
    ----------
    model : nn.Module
        Maps a batch of shape (b, ...) to logits of shape (b, n_classes), ``n_classes >= 2``.
    inputs : Tensor or ndarray of float, shape (n, ...)
        What the model takes, already normalised. Cast to the dtype of the model's
        parameters (so a ``.double()`` model gets float64 inputs).
    batch_size : int
        Points per forward pass.
    device : str or torch.device, optional
        Where to run; defaults to the model's device. The model is not moved.

    Returns
    -------
    margin : ndarray of float64, shape (n,)
        In the units of the input. Non-negative; 0 where the top two logits tie. A class
        ``j`` whose logit difference has a zero gradient (for instance a network whose
        ReLUs are all dead at ``x``) never crosses in the linear approximation, so it counts
        as ``+inf``; the margin is ``+inf`` if that holds for every ``j``.

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
    if not isinstance(inputs, torch.Tensor):
        inputs = torch.as_tensor(as_array(inputs, "inputs"))
    if inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be a non-empty batch (n, ...), got shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point, got {inputs.dtype}")
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
    """Input margins of one batch (already on the device and requiring grad), float64 (b,)."""
    logits = model(batch)
    if logits.ndim != 2 or logits.shape[0] != batch.shape[0] or logits.shape[1] < 2:
        raise ValueError(
            f"model output must have shape (batch, n_classes) with n_classes >= 2; "
            f"got {tuple(logits.shape)} for a batch of {batch.shape[0]}"
        )
    b, n_classes = logits.shape
    # Row c holds d z_c / dx for every point. Backpropagating sum over the batch of z_c gives
    # each point's own gradient because in eval mode the points do not interact (BatchNorm
    # uses its running statistics, so it acts on each point separately).
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
        logits = logits.detach().to(work)
        jacobian = jacobian.to(work)
        rows = torch.arange(b, device=logits.device)
        predicted = logits.argmax(dim=1)
        gap = (logits[rows, predicted, None] - logits).abs()  # (b, n_classes)
        # Gradient of z_i - z_j for every j at once: J_i - J_j.
        norm = torch.linalg.vector_norm(jacobian[rows, predicted, None, :] - jacobian, dim=2)
        ratio = torch.where(norm > 0, gap / norm, torch.full_like(gap, float("inf")))
        ratio[rows, predicted] = float("inf")  # j = i is not a boundary
        return ratio.min(dim=1).values.to("cpu", torch.float64).numpy()


def zero_hinge_loss(logits: torch.Tensor, targets) -> torch.Tensor:
    """The 0-Hinge loss: batch mean of ``sum over j != y of max(0, z_j - z_y)``.

    A zero-margin multi-class hinge loss. It is zero as soon as the true class ``y`` has
    the largest logit (ties count as correct), whatever the margin, so minimising it
    gives no reward for confidence. The paper's extracted text prints
    ``max(0, z_i - z_j)``, which would push the true logit down; that is read as a sign
    slip (see the paper notes).

    Parameters
    ----------
    logits : Tensor of float, shape (n, n_classes)
        Pre-softmax outputs, ``n >= 1`` and ``n_classes >= 2``; gradients flow through it.
    targets : Tensor or array-like of int, shape (n,)
        True classes in ``0 .. n_classes - 1``.

    Returns
    -------
    loss : Tensor of float, shape ()
        Non-negative scalar on ``logits.device``, in logit units.

    Examples
    --------
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
            f"logits must have shape (n, n_classes) with n >= 1 and n_classes >= 2, got {tuple(logits.shape)}"
        )
    if not isinstance(targets, torch.Tensor):
        targets = torch.as_tensor(as_array(targets, "targets"))
    if targets.ndim != 1:
        raise ValueError(f"targets must be 1-D (n,), got shape {tuple(targets.shape)}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer class indices, got {targets.dtype}")
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(f"targets has {targets.shape[0]} entries but logits has {logits.shape[0]} rows")
    targets = targets.to(logits.device, torch.int64)
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(
            f"targets must be class indices in [0, {logits.shape[1]}), "
            f"found range [{int(targets.min())}, {int(targets.max())}]"
        )
    true_logit = logits.gather(1, targets[:, None])
    # The j = y term is relu(0) = 0 with zero gradient, so no mask is needed.
    return torch.relu(logits - true_logit).sum(dim=1).mean()
