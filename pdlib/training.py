"""Training by SGD with momentum, as in the paper, with prediction checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

#: Losses :func:`train_model` can minimise.
LOSSES = ("cross_entropy", "zero_hinge")
#: Learning-rate schedules: linear warm-up then linear decay to 0, or constant.
SCHEDULES = ("warmup_linear", "constant")

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pdlib._checks import as_labels
from pdlib._progress import progress_bar
from pdlib.capture import eval_mode, model_device

__all__ = ["TrainConfig", "TrainResult", "train_model", "predict"]


@dataclass(frozen=True)
class TrainConfig:
    """How one network is trained (SGD with momentum, warm-up then linear decay).

    ``batch_size`` at least the training-set size gives full-batch gradient descent;
    ``epochs=0`` leaves the network at its initialisation.
    """

    epochs: int = 30  # passes over the training split (0 = untrained)
    batch_size: int = 128  # images per SGD step
    lr: float = 0.05  # peak learning rate, reached after the warm-up
    momentum: float = 0.9  # SGD momentum coefficient
    weight_decay: float = 5e-4  # L2 penalty coefficient (not applied to BN and biases)
    warmup_fraction: float = 0.1  # fraction of all steps spent ramping lr up linearly from 0
    n_checkpoints: int = 0  # prediction snapshots evenly spread over training, after initialisation
    # Added later: left out of the cache hash at their defaults (see pdlib.cache).
    loss: str = field(default="cross_entropy", metadata={"omit_default": True})  # one of LOSSES
    schedule: str = field(default="warmup_linear", metadata={"omit_default": True})  # one of SCHEDULES
    # Full-batch only: stop, before stepping, once the training loss is exactly 0 (0-Hinge
    # has zero gradient there; further steps would only coast on momentum).
    stop_at_zero_loss: bool = field(default=False, metadata={"omit_default": True})

    def __post_init__(self):
        for name, minimum in (("epochs", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.weight_decay < 0 or self.n_checkpoints < 0:
            raise ValueError("weight_decay and n_checkpoints must be non-negative")


@dataclass
class TrainResult:
    """What a training run reports.

    Attributes
    ----------
    train_accuracy : float
        Accuracy on the training split against the labels it was trained on, in eval mode.
    loss_history : ndarray of float32, shape (epochs,)
        Mean training loss of each epoch (fewer entries if ``stop_at_zero_loss`` stopped early).
    checkpoint_steps : ndarray of int64, shape (n_checkpoints + 1,)
        SGD steps at which predictions were recorded; 0 is initialisation (with an early
        stop: the checkpoints reached, then the stopping step).
    checkpoint_predictions : ndarray of int16, shape (n_checkpoints + 1, n_tracked)
        Predicted class of each tracked input at each checkpoint.
    seconds : float
        Wall time of the training loop.
    """

    train_accuracy: float
    loss_history: np.ndarray
    checkpoint_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    checkpoint_predictions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int16))
    seconds: float = 0.0


def predict(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 1000, device=None) -> np.ndarray:
    """Argmax predictions of ``model`` in eval mode, shape (n,) int64."""
    device = model_device(model) if device is None else torch.device(device)
    out = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, inputs.shape[0], batch_size):
            out.append(model(inputs[start:start + batch_size].to(device)).argmax(dim=1).cpu())
    return torch.cat(out).numpy().astype(np.int64)


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Decay only weight matrices and kernels: decaying BN scales and biases hurts fitting.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_model(
    model: nn.Module,
    inputs: torch.Tensor,
    labels,
    config: TrainConfig,
    *,
    seed: int,
    device: str | torch.device | None = None,
    track_inputs: torch.Tensor | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``(inputs, labels)`` with SGD + momentum.

    The loss is ``config.loss``: cross-entropy, or the 0-Hinge loss of Section 3.3
    (:func:`pdlib.margins.zero_hinge_loss`), which stops pushing a point once it is
    classified correctly.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor of float32, shape (n, ...)
    labels : array-like of int, shape (n,)
        The labels to fit (possibly corrupted).
    config : TrainConfig
    seed : int
        Seeds the order of the mini-batches.
    device : str or torch.device, optional
        Where to train; the model is moved there. Defaults to CUDA when available.
    track_inputs : Tensor, shape (m, ...), optional
        Inputs whose predictions are recorded at initialisation and at
        ``config.n_checkpoints`` evenly spaced steps (the last at the end of training),
        for the iteration-learned metric.
    progress : bool, optional
        Progress bar over epochs.

    Returns
    -------
    TrainResult
    """
    from pdlib.margins import zero_hinge_loss

    loss_function = F.cross_entropy if config.loss == "cross_entropy" else zero_hinge_loss
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    y = torch.as_tensor(as_labels(labels, "labels", length=inputs.shape[0], length_name="inputs"))
    model.to(device)
    x_device, y_device = inputs.to(device), y.to(device)
    n = inputs.shape[0]
    # Equal-size batches: a ragged last batch of a few images makes deep nets unstable.
    steps_per_epoch = -(-n // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    warmup = max(1, int(config.warmup_fraction * total_steps))
    optimizer = torch.optim.SGD(_parameter_groups(model, config.weight_decay), lr=config.lr,
                                momentum=config.momentum, nesterov=config.momentum > 0)
    if config.schedule == "constant":
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    else:
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: step / warmup if step < warmup
            else max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    if config.stop_at_zero_loss and steps_per_epoch != 1:
        raise ValueError(f"stop_at_zero_loss needs full-batch training: batch_size ({config.batch_size}) "
                         f"must be at least the number of inputs ({n})")
    checkpoint_steps = np.unique(np.linspace(0, total_steps, config.n_checkpoints + 1).round().astype(np.int64))
    snapshots, snapshot_steps = [], []

    def snapshot() -> None:
        snapshots.append(predict(model, track_inputs, device=device).astype(np.int16))
        snapshot_steps.append(step)

    generator = torch.Generator().manual_seed(seed)
    losses, step, start = [], 0, time.perf_counter()
    if track_inputs is not None:
        snapshot()
    fitted = False
    model.train()
    for _ in progress_bar(range(config.epochs), desc="train", enabled=progress):
        order = torch.randperm(n, generator=generator).to(device)
        epoch_loss = torch.zeros((), device=device)
        for batch in order.tensor_split(steps_per_epoch):
            out = model(x_device[batch])
            batch_loss = loss_function(out, y_device[batch])
            if config.stop_at_zero_loss and float(batch_loss.detach()) == 0.0:
                fitted = True
                break
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            epoch_loss += batch_loss.detach() * batch.shape[0]
            if track_inputs is not None and step in checkpoint_steps[1:]:
                snapshot()
                model.train()
        losses.append(float(epoch_loss) / n)
        if fitted:
            if track_inputs is not None and snapshot_steps[-1] != step:
                snapshot()
            break
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(
                f"training diverged: the loss is {losses[-1]} after epoch {len(losses)}; lower TrainConfig.lr "
                f"(now {config.lr})")
    seconds = time.perf_counter() - start
    accuracy = float((predict(model, inputs, device=device) == y.numpy()).mean())
    return TrainResult(
        train_accuracy=accuracy,
        loss_history=np.asarray(losses, dtype=np.float32),
        checkpoint_steps=np.asarray(snapshot_steps, dtype=np.int64),
        checkpoint_predictions=np.stack(snapshots) if snapshots else np.zeros((0, 0), np.int16),
        seconds=seconds,
    )
