"""Training by SGD with momentum, as in the paper, with prediction checkpoints and margins.

Besides the loss history it records each tracked input's prediction at ``n_checkpoints`` evenly
spaced steps (iteration learned) and each training point's margin from its mini-batch's forward
pass every epoch, whose mean is the area under the margin (AUM, Pleiss et al. 2020).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pdlib._checks import as_labels, default_device
from pdlib._progress import progress_bar
from pdlib.margins import zero_hinge_loss
from pdlib.probes import eval_mode, model_device

__all__ = ["TrainConfig", "TrainResult", "train_model", "predict", "LOSSES", "SCHEDULES"]

#: Losses :func:`train_model` can minimise.
LOSSES = ("cross_entropy", "zero_hinge")
#: Learning-rate schedules: linear warm-up then linear decay to 0, or constant.
SCHEDULES = ("warmup_linear", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How one network is trained (SGD with Nesterov momentum); ``batch_size >= n`` is full-batch GD."""

    epochs: int = 30  # passes over the training split (0 = untrained)
    batch_size: int = 128  # images per SGD step
    lr: float = 0.05  # peak learning rate, reached after the warm-up
    momentum: float = 0.9  # SGD momentum coefficient
    weight_decay: float = 5e-4  # L2 penalty coefficient (not applied to BN and biases)
    warmup_fraction: float = 0.1  # fraction of all steps spent ramping lr up linearly from 0
    n_checkpoints: int = 0  # prediction snapshots evenly spread over training, after initialisation
    loss: str = "cross_entropy"  # one of LOSSES
    schedule: str = "warmup_linear"  # one of SCHEDULES
    # Full-batch only: stop, before stepping, once the training loss is exactly 0 (0-Hinge has
    # zero gradient there; further steps would only coast on momentum).
    stop_at_zero_loss: bool = False
    # Images per forward/backward pass (0 = the whole batch): a step's gradient is accumulated
    # over passes, the same update as one pass for networks without batch norm, and bounded memory.
    micro_batch: int = 0

    def __post_init__(self):
        for name, minimum in (("epochs", 0), ("batch_size", 1), ("micro_batch", 0), ("n_checkpoints", 0)):
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
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay}")


@dataclass
class TrainResult:
    """What a training run reports: ``train_accuracy`` (eval mode, against the fitted labels),
    ``loss_history`` (epochs,) float32, ``checkpoint_steps`` (T + 1,) (0 = initialisation),
    ``checkpoint_predictions`` (T + 1, n_tracked) int16, ``aum`` (n,) float32 (logits; NaN without an
    epoch) and ``seconds`` of the training loop.
    """

    train_accuracy: float
    loss_history: np.ndarray
    checkpoint_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    checkpoint_predictions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int16))
    aum: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    seconds: float = 0.0


def predict(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 1000, device=None) -> np.ndarray:
    """Argmax predictions of ``model`` in eval mode, shape (n,) int64."""
    device = model_device(model) if device is None else torch.device(device)
    out = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, inputs.shape[0], batch_size):
            out.append(model(inputs[start:start + batch_size].to(device)).argmax(dim=1).cpu())
    return torch.cat(out).numpy().astype(np.int64)


def _margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Assigned logit minus the largest other logit, per row."""
    assigned = logits.gather(1, targets[:, None])[:, 0]
    return assigned - logits.scatter(1, targets[:, None], float("-inf")).amax(dim=1)


def _optimiser(model: nn.Module, config: TrainConfig, total_steps: int):
    # Decay only weight matrices and kernels: decaying BN scales and biases hurts fitting.
    groups = [{"params": [p for p in model.parameters() if p.ndim > 1], "weight_decay": config.weight_decay},
              {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)
    warmup = max(1, int(config.warmup_fraction * total_steps))
    if config.schedule == "constant":
        factor = lambda step: 1.0  # noqa: E731
    else:
        factor = lambda step: (step / warmup if step < warmup  # noqa: E731
                               else max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_model(model: nn.Module, inputs: torch.Tensor, labels, config: TrainConfig, *, seed: int,
                device: str | torch.device | None = None, track_inputs: torch.Tensor | None = None,
                progress: bool | None = None) -> TrainResult:
    """Train ``model`` in place on ``(inputs, labels)`` with SGD + momentum on ``config.loss``.

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
        The model is moved there; defaults to CUDA when available.
    track_inputs : Tensor, shape (m, ...), optional
        Inputs whose predictions are recorded at initialisation and ``config.n_checkpoints`` steps.
    progress : bool, optional

    Returns
    -------
    TrainResult
    """
    loss_function = F.cross_entropy if config.loss == "cross_entropy" else zero_hinge_loss
    device = default_device() if device is None else torch.device(device)
    y = torch.as_tensor(as_labels(labels, "labels", length=inputs.shape[0], length_name="inputs"))
    model.to(device)
    x_device, y_device = inputs.to(device), y.to(device)
    n = inputs.shape[0]
    # Equal-size batches: a ragged last batch of a few images makes deep nets unstable.
    steps_per_epoch = -(-n // config.batch_size)
    if config.stop_at_zero_loss and steps_per_epoch != 1:
        raise ValueError(f"stop_at_zero_loss needs full-batch training: batch_size ({config.batch_size}) "
                         f"must be at least the number of inputs ({n})")
    total_steps = config.epochs * steps_per_epoch
    optimizer, schedule = _optimiser(model, config, total_steps)
    checkpoint_steps = np.unique(np.linspace(0, total_steps, config.n_checkpoints + 1).round().astype(np.int64))
    snapshots, snapshot_steps = [], []
    margin_sum = torch.zeros(n, device=device)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()

    def snapshot(step: int = 0) -> None:
        snapshots.append(predict(model, track_inputs, device=device).astype(np.int16))
        snapshot_steps.append(step)

    if track_inputs is not None:
        snapshot()
    else:
        snapshot = lambda step: None  # noqa: E731 - nothing is tracked
    model.train()
    # Momentum buffers of parameters that stop receiving gradient (dead units, fitted points under
    # 0-Hinge) decay into subnormal floats, which the CPU handles ~20x slower: flush them to zero.
    torch.set_flush_denormal(True)
    try:
        losses, step = _epochs(model, x_device, y_device, config, loss_function, optimizer, schedule, generator,
                               steps_per_epoch, margin_sum, checkpoint_steps, snapshot, progress)
    finally:
        torch.set_flush_denormal(False)
    seconds = time.perf_counter() - start
    accuracy = float((predict(model, inputs, device=device) == y.numpy()).mean())
    aum = (margin_sum / len(losses)).cpu().numpy() if losses else np.full(n, np.nan)
    return TrainResult(
        train_accuracy=accuracy, loss_history=np.asarray(losses, dtype=np.float32),
        checkpoint_steps=np.asarray(snapshot_steps, dtype=np.int64),
        checkpoint_predictions=np.stack(snapshots) if snapshots else np.zeros((0, 0), np.int16),
        aum=aum.astype(np.float32), seconds=seconds)


def _epochs(model, x_device, y_device, config, loss_function, optimizer, schedule, generator, steps_per_epoch,
            margin_sum, checkpoint_steps, snapshot, progress) -> tuple[list, int]:
    """The training loop of :func:`train_model`; returns the epochs' mean losses and the steps taken."""
    n, device = x_device.shape[0], x_device.device
    losses, step, fitted = [], 0, False
    for _ in progress_bar(range(config.epochs), desc="train", enabled=progress):
        order = torch.randperm(n, generator=generator).to(device)
        epoch_loss = torch.zeros((), device=device)
        for batch in order.tensor_split(steps_per_epoch):
            optimizer.zero_grad(set_to_none=True)
            batch_loss = torch.zeros((), device=device)
            for part in batch.split(config.micro_batch or len(batch)):
                out = model(x_device[part])
                # Each pass's mean loss weighted by its share: the gradient of the batch's mean loss.
                loss = loss_function(out, y_device[part]) * (len(part) / len(batch))
                loss.backward()
                batch_loss += loss.detach()
                margin_sum[part] += _margins(out.detach().float(), y_device[part])
            if config.stop_at_zero_loss and float(batch_loss) == 0.0:
                fitted = True  # the gradient is exactly zero: stop before stepping
                break
            optimizer.step()
            schedule.step()
            step += 1
            epoch_loss += batch_loss * len(batch)
            if step in checkpoint_steps[1:]:
                snapshot(step)
                model.train()
        losses.append(float(epoch_loss) / n)
        if fitted:
            if step not in checkpoint_steps:
                snapshot(step)
            break
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"training diverged: the loss is {losses[-1]} after epoch {len(losses)}; "
                                     f"lower TrainConfig.lr (now {config.lr})")
    return losses, step

