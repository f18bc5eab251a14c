"""Training by SGD with momentum, as in the paper, with prediction checkpoints and margins.

Besides the loss history it records predictions at ``n_checkpoints`` evenly spaced steps (iteration
learned) and each training point's margin from its mini-batch's forward pass every epoch, whose mean
is the area under the margin (AUM, Pleiss et al. 2020). At a checkpoint, held-out inputs are
predicted in eval mode; a training input's prediction is the one its latest mini-batch forward pass
made (as forgetting-event studies record it), except at initialisation and at the end, where every
input is predicted in eval mode. So checkpoints cost a forward pass over the held-out inputs only.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pdlib._checks import as_labels, default_device
from pdlib._progress import progress_bar
from pdlib.margins import zero_hinge_loss
from pdlib.metrics import checkpoint_schedule
from pdlib.probes import eval_mode, model_device

__all__ = ["TrainConfig", "TrainResult", "train_model", "predict", "LOSSES", "SCHEDULES"]

#: Losses :func:`train_model` can minimise.
LOSSES = ("cross_entropy", "zero_hinge")
#: Learning-rate schedules: linear warm-up then linear decay to 0, or constant.
SCHEDULES = ("warmup_linear", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How one network is trained (SGD with Nesterov momentum); ``batch_size >= n`` is full-batch
    GD."""

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
    # Run the training forward and backward through torch.compile (inductor), where a C compiler
    # (CPU) or Triton (CUDA) is found and PDLIB_COMPILE is not "0"; otherwise eager. Equal to eager
    # within float rounding. The one-off compile (tens of seconds on a CPU) is shared by every
    # network of one shape in a process, so it pays for conv nets trained many times.
    compile: bool = False
    # Extra snapshots evenly spread inside the first epoch, for the iteration learned's resolution;
    # left out of the config hash at 0, so that runs cached before it existed keep their keys.
    first_epoch_checkpoints: int = field(default=0, metadata={"hash": "omit_default"})

    def __post_init__(self):
        for name, minimum in (
            ("epochs", 0),
            ("batch_size", 1),
            ("micro_batch", 0),
            ("n_checkpoints", 0),
            ("first_epoch_checkpoints", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}"
            )
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
    ``checkpoint_predictions`` (T + 1, n_tracked) int16 of ``track_inputs`` (eval mode),
    ``checkpoint_train_predictions`` (T + 1, n) int16 of the training inputs (eval mode in the first
    and last rows, else from their latest mini-batch forward pass), ``aum`` (n,) float32 (logits;
    NaN without an epoch), ``seconds`` of the training loop and whether it ran ``compiled``.
    """

    train_accuracy: float
    loss_history: np.ndarray
    checkpoint_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    checkpoint_predictions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int16))
    checkpoint_train_predictions: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0), np.int16)
    )
    aum: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    seconds: float = 0.0
    compiled: bool = False


def predict(
    model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 512, device=None
) -> np.ndarray:
    """Argmax predictions of ``model`` in eval mode, shape (n,) int64.

    512 images a pass: on 2 CPU cores the fastest size for the laptop's VGG16 and MLP and within 20
    % of it for ResNet18 (larger batches spill the activations out of cache).
    """
    device = model_device(model) if device is None else torch.device(device)
    out = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, inputs.shape[0], batch_size):
            out.append(model(inputs[start : start + batch_size].to(device)).argmax(dim=1).cpu())
    return torch.cat(out).numpy().astype(np.int64)


def _margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Assigned logit minus the largest other logit, per row."""
    assigned = logits.gather(1, targets[:, None])[:, 0]
    return assigned - logits.scatter(1, targets[:, None], float("-inf")).amax(dim=1)


def _forward_pass(model: nn.Module, loss_function, inputs: torch.Tensor, targets: torch.Tensor):
    """One training forward pass: the mean loss, and each input's margin (n,) and predicted class
    (n,)."""
    out = model(inputs)
    logits = out.detach().float()
    return loss_function(out, targets), _margins(logits, targets), logits.argmax(dim=1)


@functools.cache
def _compiled_forward_pass():
    """:func:`_forward_pass` through torch.compile, made on first use (importing dynamo takes
    seconds).

    One per process: dynamo guards on the model's structure and the input shapes, so every network
    of one architecture and batch size reuses the same kernels.
    """
    return torch.compile(_forward_pass)


def compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile`` can generate code for ``device`` here (and PDLIB_COMPILE is not
    "0")."""
    if os.environ.get("PDLIB_COMPILE", "1") == "0":
        return False
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return device.type == "cpu" and any(
        shutil.which(cc) for cc in (os.environ.get("CXX", "c++"), "g++", "clang++")
    )


def _optimiser(model: nn.Module, config: TrainConfig, total_steps: int):
    # Decay only weight matrices and kernels: decaying BN scales and biases hurts fitting.
    groups = [
        {
            "params": [p for p in model.parameters() if p.ndim > 1],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0},
    ]
    # The fused kernel: the same update, one pass over each parameter (MLP 7x256: 1.1x faster
    # steps).
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    optimizer = torch.optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.momentum > 0,
        fused=fused or None,
    )
    warmup = max(1, int(config.warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        if step < warmup:
            return step / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
        Held-out inputs predicted (eval mode) at initialisation and at ``config.n_checkpoints``
        steps. The training inputs are recorded at the same steps whenever ``config.n_checkpoints >
        0``.
    progress : bool, optional

    Returns
    -------
    TrainResult
    """
    loss_function = F.cross_entropy if config.loss == "cross_entropy" else zero_hinge_loss
    device = default_device() if device is None else torch.device(device)
    y = torch.as_tensor(as_labels(labels, "labels", length=inputs.shape[0], length_name="inputs"))
    model.to(device)
    x_device, y_device = inputs.to(device).contiguous(), y.to(device)
    n = inputs.shape[0]
    # Equal-size batches: a ragged last batch of a few images makes deep nets unstable.
    steps_per_epoch = -(-n // config.batch_size)
    if config.stop_at_zero_loss and steps_per_epoch != 1:
        raise ValueError(
            f"stop_at_zero_loss needs full-batch training: batch_size ({config.batch_size}) must "
            f"be at least the number of inputs ({n})"
        )
    total_steps = config.epochs * steps_per_epoch
    optimizer, schedule = _optimiser(model, config, total_steps)
    compiled = config.compile and config.epochs > 0 and compiler_available(device)
    # Eval-mode predictions (checkpoints, accuracy) stay eager: compiling them too costs more than
    # it saves.
    forward = functools.partial(
        _compiled_forward_pass() if compiled else _forward_pass, model, loss_function
    )
    planned = np.union1d(
        checkpoint_schedule(total_steps, config.n_checkpoints),
        checkpoint_schedule(steps_per_epoch, config.first_epoch_checkpoints + 1)
        if config.n_checkpoints and config.first_epoch_checkpoints
        else [],
    )
    tracker = _Checkpoints(model, x_device, track_inputs, planned, device, config.n_checkpoints > 0)
    margin_sum = torch.zeros(n, device=device)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    # Momentum buffers of parameters that stop receiving gradient (dead units, fitted points under
    # 0-Hinge) decay into subnormal floats, which the CPU handles ~20x slower: flush them to zero.
    torch.set_flush_denormal(True)
    try:
        losses = _epochs(
            _Loop(
                forward,
                x_device,
                y_device,
                config,
                optimizer,
                schedule,
                generator,
                steps_per_epoch,
                margin_sum,
                tracker,
                progress,
            )
        )
    finally:
        torch.set_flush_denormal(False)
    seconds = time.perf_counter() - start
    final = predict(model, x_device, device=device)
    tracker.finish(final)
    aum = (margin_sum / len(losses)).cpu().numpy() if losses else np.full(n, np.nan)
    return TrainResult(
        train_accuracy=float((final == y.numpy()).mean()),
        loss_history=np.asarray(losses, dtype=np.float32),
        checkpoint_steps=np.asarray(tracker.steps, dtype=np.int64),
        checkpoint_predictions=tracker.stacked(tracker.held_out),
        checkpoint_train_predictions=tracker.stacked(tracker.train),
        aum=aum.astype(np.float32),
        seconds=seconds,
        compiled=compiled,
    )


class _Checkpoints:
    """Predictions at the checkpoint steps: held-out inputs in eval mode, training inputs as last
    seen.

    ``latest`` (n,) holds each training input's prediction from its most recent mini-batch forward
    pass (eval mode at initialisation until then); ``finish`` replaces the last row's training
    predictions by the final eval-mode ones.
    """

    def __init__(self, model, train_inputs, track_inputs, planned, device, enabled):
        self.model, self.track_inputs, self.device = model, track_inputs, device
        self.enabled = enabled
        self.planned = {int(step) for step in planned if step > 0}
        self.steps, self.held_out, self.train = [], [], []
        self.latest = None
        if self.enabled:
            self.latest = torch.as_tensor(
                predict(model, train_inputs, device=device), device=device
            )
            self.record(0)

    def observe(self, part: torch.Tensor, predicted: torch.Tensor) -> None:
        if self.enabled:
            self.latest[part] = predicted

    def record(self, step: int) -> None:
        """Snapshot at ``step`` (the model is back in train mode afterwards)."""
        self.steps.append(step)
        self.train.append(self.latest.to(torch.int16).cpu().numpy())
        if self.track_inputs is not None:
            self.held_out.append(
                predict(self.model, self.track_inputs, device=self.device).astype(np.int16)
            )

    def due(self, step: int) -> bool:
        return self.enabled and step in self.planned

    def finish(self, final: np.ndarray) -> None:
        if self.enabled:
            self.train[-1] = final.astype(np.int16)

    @staticmethod
    def stacked(rows: list) -> np.ndarray:
        return np.stack(rows) if rows else np.zeros((0, 0), np.int16)


@dataclass
class _Loop:
    """What the training loop works on: the compiled or eager forward pass, the data on the device,
    the optimiser and its schedule, the batch order's generator, the per-input margin sums (AUM)
    and the checkpoint tracker."""

    forward: Callable
    x: torch.Tensor
    y: torch.Tensor
    config: TrainConfig
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    steps_per_epoch: int
    margin_sum: torch.Tensor
    tracker: _Checkpoints
    progress: bool | None


def _epochs(loop: _Loop) -> list:
    """The training loop of :func:`train_model`; returns the epochs' mean losses."""
    config, tracker, margin_sum = loop.config, loop.tracker, loop.margin_sum
    n, device = loop.x.shape[0], loop.x.device
    losses, step, fitted = [], 0, False
    for _ in progress_bar(range(config.epochs), desc="train", enabled=loop.progress):
        order = torch.randperm(n, generator=loop.generator).to(device)
        epoch_loss = torch.zeros((), device=device)
        for batch in order.tensor_split(loop.steps_per_epoch):
            loop.optimizer.zero_grad(set_to_none=True)
            batch_loss = torch.zeros((), device=device)
            for part in batch.split(config.micro_batch or len(batch)):
                loss, margins, predicted = loop.forward(loop.x[part], loop.y[part])
                if len(part) < len(batch):
                    # Each pass's mean loss weighted by its share: the gradient of the batch's mean
                    # loss.
                    loss = loss * (len(part) / len(batch))
                loss.backward()
                batch_loss += loss.detach()
                margin_sum[part] += margins
                tracker.observe(part, predicted)
            if config.stop_at_zero_loss and float(batch_loss) == 0.0:
                fitted = True  # the gradient is exactly zero: stop before stepping
                break
            loop.optimizer.step()
            loop.schedule.step()
            step += 1
            epoch_loss += batch_loss * len(batch)
            if tracker.due(step):
                tracker.record(step)
        losses.append(float(epoch_loss) / n)
        if fitted:
            if tracker.enabled and tracker.steps[-1] != step:
                tracker.record(step)
            break
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(
                f"training diverged: the loss is {losses[-1]} after epoch {len(losses)}; lower "
                f"TrainConfig.lr (now {config.lr})"
            )
    return losses
