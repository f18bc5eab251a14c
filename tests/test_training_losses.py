"""0-Hinge training, constant schedules, untrained networks, early stop and hash stability."""

import dataclasses

import numpy as np
import pytest
import torch

from pdlib import TrainConfig, make_model, train_model
from pdlib.cache import config_hash
from pdlib.margins import output_margin, zero_hinge_loss


@pytest.fixture(scope="module")
def blobs():
    generator = torch.Generator().manual_seed(1)
    centres = torch.randn(3, 1, 4, 4, generator=generator) * 2
    labels = torch.randint(0, 3, (120,), generator=generator)
    return centres[labels] + 0.7 * torch.randn(120, 1, 4, 4, generator=generator), labels


def test_new_fields_at_their_defaults_keep_old_cache_hashes():
    # The hash of TrainConfig() as it was before `loss`, `schedule` and `stop_at_zero_loss` existed.
    assert config_hash(TrainConfig()) == "5c7423fca1221105"
    assert config_hash(TrainConfig(loss="zero_hinge")) != config_hash(TrainConfig())
    assert config_hash(TrainConfig(schedule="constant")) != config_hash(TrainConfig())
    assert config_hash(TrainConfig(stop_at_zero_loss=True)) != config_hash(TrainConfig())


@pytest.mark.parametrize("changes, message", [({"loss": "mse"}, "loss must be one of"),
                                               ({"schedule": "cosine"}, "schedule must be one of"),
                                               ({"epochs": -1}, "epochs must be an integer >= 0")])
def test_bad_training_configs(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_zero_epochs_leave_the_initialisation(blobs):
    inputs, labels = blobs
    model = make_model("mlp", 3, 1, 4, width=16, seed=3)
    before = [p.detach().clone() for p in model.parameters()]
    result = train_model(model, inputs, labels, TrainConfig(epochs=0), seed=0, device="cpu",
                         track_inputs=inputs[:5], progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert result.loss_history.shape == (0,) and result.checkpoint_steps.tolist() == [0]


def test_zero_hinge_full_batch_stops_once_every_point_is_right(blobs):
    inputs, labels = blobs
    config = TrainConfig(epochs=3000, batch_size=len(labels), lr=0.002, momentum=0.9, weight_decay=0.0,
                         warmup_fraction=0.0, loss="zero_hinge", schedule="constant", stop_at_zero_loss=True,
                         n_checkpoints=4)
    model = make_model("mlp", 3, 1, 4, width=16, seed=0)
    result = train_model(model, inputs, labels, config, seed=0, device="cpu", track_inputs=inputs, progress=False)
    assert result.train_accuracy == 1.0
    assert result.loss_history[-1] == 0.0 and (result.loss_history[:-1] > 0).all()
    n_steps = len(result.loss_history) - 1  # the last "epoch" stopped before stepping
    assert n_steps < 3000 and result.checkpoint_steps[-1] == n_steps
    with torch.no_grad():
        logits = model.eval()(inputs)
    assert float(zero_hinge_loss(logits, labels)) == 0.0
    np.testing.assert_array_equal(result.checkpoint_predictions[-1], logits.argmax(1).numpy())
    # Cross-entropy keeps pushing margins up; 0-Hinge stops at the first separating weights.
    ce_model = make_model("mlp", 3, 1, 4, width=16, seed=0)
    train_model(ce_model, inputs, labels, TrainConfig(epochs=60, batch_size=30, lr=0.05), seed=0, device="cpu",
                progress=False)
    with torch.no_grad():
        ce_margin = output_margin(ce_model.eval()(inputs).numpy()).mean()
    assert output_margin(logits.numpy()).mean() < ce_margin / 3


def test_constant_schedule_keeps_the_learning_rate(blobs):
    inputs, labels = blobs
    seen = []

    class Spy(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    original = torch.optim.SGD
    torch.optim.SGD = Spy
    try:
        train_model(make_model("mlp", 3, 1, 4, width=8, seed=0), inputs, labels,
                    TrainConfig(epochs=3, batch_size=40, lr=0.01, schedule="constant"), seed=0, device="cpu",
                    progress=False)
    finally:
        torch.optim.SGD = original
    assert seen == [0.01] * 9


def test_stop_at_zero_loss_needs_full_batches(blobs):
    inputs, labels = blobs
    with pytest.raises(ValueError, match="full-batch"):
        train_model(make_model("mlp", 3, 1, 4, width=8, seed=0), inputs, labels,
                    TrainConfig(epochs=2, batch_size=10, stop_at_zero_loss=True), seed=0, device="cpu", progress=False)


def test_replace_keeps_validation():
    with pytest.raises(ValueError, match="loss"):
        dataclasses.replace(TrainConfig(), loss="hinge")
