"""Training by SGD with momentum, as in the paper, with prediction checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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
    """How one network is trained (SGD with momentum, warm-up then linear decay)."""

    epochs: int = 30  # passes over the training split
    batch_size: int = 128  # images per SGD step
    lr: float = 0.05  # peak learning rate, reached after the warm-up
    momentum: float = 0.9  # SGD momentum coefficient
    weight_decay: float = 5e-4  # L2 penalty coefficient (not applied to BN and biases)
    warmup_fraction: float = 0.1  # fraction of all steps spent ramping lr up linearly from 0
    n_checkpoints: int = 0  # prediction snapshots evenly spread over training, after initialisation

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
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
        Mean training loss of each epoch.
    checkpoint_steps : ndarray of int64, shape (n_checkpoints + 1,)
        SGD steps at which predictions were recorded; 0 is initialisation.
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
    loss: str = "cross_entropy",
    track_inputs: torch.Tensor | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``(inputs, labels)`` with SGD + momentum.

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
    loss : {"cross_entropy"}
        Training loss.
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
    if loss != "cross_entropy":
        raise ValueError(f"loss must be 'cross_entropy', got {loss!r}")
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
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / warmup if step < warmup else max(0.0, (total_steps - step) / (total_steps - warmup))
    )
    checkpoint_steps = np.unique(np.linspace(0, total_steps, config.n_checkpoints + 1).round().astype(np.int64))
    snapshots = []

    def snapshot() -> None:
        snapshots.append(predict(model, track_inputs, device=device).astype(np.int16))

    if track_inputs is not None:
        snapshot()
    generator = torch.Generator().manual_seed(seed)
    losses, step, start = [], 0, time.perf_counter()
    model.train()
    for _ in progress_bar(range(config.epochs), desc="train", enabled=progress):
        order = torch.randperm(n, generator=generator).to(device)
        epoch_loss = torch.zeros((), device=device)
        for batch in order.tensor_split(steps_per_epoch):
            out = model(x_device[batch])
            batch_loss = F.cross_entropy(out, y_device[batch])
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
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(
                f"training diverged: the loss is {losses[-1]} after epoch {len(losses)}; lower TrainConfig.lr "
                f"(now {config.lr})")
    seconds = time.perf_counter() - start
    accuracy = float((predict(model, inputs, device=device) == y.numpy()).mean())
    return TrainResult(
        train_accuracy=accuracy,
        loss_history=np.asarray(losses, dtype=np.float32),
        checkpoint_steps=checkpoint_steps if track_inputs is not None else np.zeros(0, np.int64),
        checkpoint_predictions=np.stack(snapshots) if snapshots else np.zeros((0, 0), np.int16),
        seconds=seconds,
    )
