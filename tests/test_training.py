"""pdlib.training: fitting, checkpoints, schedules, 0-Hinge early stop, micro-batches, AUM, initial
head scale.

Oracles: a plain gradient-descent loop written out by hand (AUM), the same network trained without
early stopping (stop_at_zero_loss), one full batch against accumulated micro-batches.
"""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import gaussian_blobs

from pdlib import TrainConfig, make_model, predict, train_model
from pdlib.cache import _jsonable, config_hash
from pdlib.margins import output_margin, zero_hinge_loss
from pdlib.metrics import even_checkpoints

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def blobs():
    return gaussian_blobs(3, 4, 120, seed=1, noise=0.7)


def fit(model, inputs, labels, config, **options):
    """:func:`train_model` on the CPU with seed 0 and no progress bar, unless ``options`` say
    otherwise."""
    return train_model(
        model, inputs, labels, config, **{"seed": 0, "device": "cpu", "progress": False, **options}
    )


def same_weights(a, b):
    return all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


# --- fitting and checkpoints -------------------------------------------------------------------


def test_training_fits_and_is_reproducible(blobs):
    inputs, labels = blobs
    config = TrainConfig(epochs=15, batch_size=20, lr=0.05)
    model = make_model("mlp", 3, 1, 4, width=16, seed=0)
    result = train_model(model, inputs, labels, config, seed=0, device="cpu", progress=False)
    assert result.train_accuracy >= 0.99
    assert result.loss_history.shape == (15,) and result.loss_history[-1] < result.loss_history[0]
    assert result.aum.shape == (120,) and result.aum.dtype == np.float32
    again = make_model("mlp", 3, 1, 4, width=16, seed=0)
    train_model(again, inputs, labels, config, seed=0, device="cpu", progress=False)
    assert same_weights(model, again)
    other_order = make_model("mlp", 3, 1, 4, width=16, seed=0)
    train_model(other_order, inputs, labels, config, seed=1, device="cpu", progress=False)
    assert not same_weights(model, other_order)  # the seed orders the mini-batches


def test_checkpoints_record_predictions():
    inputs, labels = torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,))
    model = make_model("mlp", 3, 1, 4, width=8, seed=0)
    initial = predict(model, inputs[:10])
    result = train_model(
        model,
        inputs,
        labels,
        TrainConfig(epochs=4, batch_size=16, n_checkpoints=8),
        seed=0,
        device="cpu",
        track_inputs=inputs[:10],
        progress=False,
    )
    assert result.checkpoint_steps.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert (
        result.checkpoint_predictions.shape == (9, 10)
        and result.checkpoint_predictions.dtype == np.int16
    )
    np.testing.assert_array_equal(result.checkpoint_predictions[0], initial)
    np.testing.assert_array_equal(result.checkpoint_predictions[-1], predict(model, inputs[:10]))
    train_rows = result.checkpoint_train_predictions
    assert train_rows.shape == (9, 64) and train_rows.dtype == np.int16
    np.testing.assert_array_equal(train_rows[-1], predict(model, inputs))


def test_first_epoch_checkpoints_add_snapshots_and_change_nothing_else():
    """Extra snapshots inside the first epoch: the steps are the union of both schedules, training
    is unchanged, the even rows are the run without extras (even_checkpoints finds them), and a
    config at the default keeps the hash it had before the field existed."""
    inputs, labels = torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,))
    base = TrainConfig(epochs=4, batch_size=8, n_checkpoints=4)  # 8 steps per epoch
    results, models = {}, {}
    for extras in (0, 3):
        models[extras] = make_model("mlp", 3, 1, 4, width=8, seed=0)
        config = dataclasses.replace(base, first_epoch_checkpoints=extras)
        results[extras] = fit(models[extras], inputs, labels, config, track_inputs=inputs[:10])
    assert results[0].checkpoint_steps.tolist() == [0, 8, 16, 24, 32]
    assert results[3].checkpoint_steps.tolist() == [0, 2, 4, 6, 8, 16, 24, 32]
    assert same_weights(models[0], models[3])
    even = even_checkpoints(results[3].checkpoint_steps, 4)
    assert even.sum() == 5
    for rows in ("checkpoint_predictions", "checkpoint_train_predictions"):
        np.testing.assert_array_equal(getattr(results[3], rows)[even], getattr(results[0], rows))
    assert "first_epoch_checkpoints" not in json.dumps(_jsonable(base))
    assert config_hash(base) != config_hash(dataclasses.replace(base, first_epoch_checkpoints=3))


def test_training_points_at_a_checkpoint_are_their_latest_forward_pass(blobs):
    """Full batches, a checkpoint every step: row s is the prediction of the forward pass of step s,
    i.e. of the weights after s - 1 steps (an MLP predicts the same in train and eval mode); the
    oracle retrains the same initialisation for s - 1 steps."""
    inputs, labels = blobs
    config = TrainConfig(
        epochs=6, batch_size=120, lr=0.5, warmup_fraction=0.0, schedule="constant", n_checkpoints=6
    )
    initial = make_model("mlp", 3, 1, 4, width=8, seed=5)
    model = copy.deepcopy(initial)
    rows = train_model(
        model, inputs, labels, config, seed=0, device="cpu", progress=False
    ).checkpoint_train_predictions
    np.testing.assert_array_equal(rows[0], predict(initial, inputs))
    np.testing.assert_array_equal(rows[-1], predict(model, inputs))
    for step in range(1, 6):
        replay = copy.deepcopy(initial)
        fit(replay, inputs, labels, dataclasses.replace(config, epochs=step - 1, n_checkpoints=0))
        np.testing.assert_array_equal(rows[step], predict(replay, inputs), err_msg=f"step {step}")
    assert len({tuple(row) for row in rows}) > 2  # the predictions do change along the way


def test_mini_batch_checkpoints_hold_each_points_latest_pass(blobs):
    """With mini-batches a point keeps the prediction of the last batch it was in (eval at the
    start)."""
    inputs, labels = blobs
    config = TrainConfig(
        epochs=3, batch_size=40, lr=0.05, n_checkpoints=9
    )  # a checkpoint every step
    model = make_model("mlp", 3, 1, 4, width=8, seed=2)
    seen = []
    original = model.forward
    model.forward = lambda x: seen.append(original(x)) or seen[-1]
    initial = predict(model, inputs)
    seen.clear()
    rows = train_model(
        model, inputs, labels, config, seed=4, device="cpu", progress=False
    ).checkpoint_train_predictions
    order = torch.randperm(
        120, generator=torch.Generator().manual_seed(4)
    )  # the first epoch's batches
    expected = initial.copy()
    for step, batch in enumerate(order.tensor_split(3), start=1):
        expected[batch.numpy()] = seen[step].argmax(1).numpy()  # seen[0] is the initial eval pass
        np.testing.assert_array_equal(rows[step], expected, err_msg=f"step {step}")


@pytest.mark.slow
def test_compiled_training_equals_eager_within_float_rounding(blobs):
    """torch.compile (inductor) trains to the same weights as eager mode, up to float rounding; with
    PDLIB_COMPILE=0 the same config runs eagerly and says so."""
    from pdlib.training import compiler_available

    if not compiler_available(torch.device("cpu")):
        pytest.skip("no C++ compiler for inductor")
    inputs = torch.nn.functional.interpolate(blobs[0], size=8)
    labels = blobs[1]
    config = TrainConfig(epochs=3, batch_size=40, lr=0.05, compile=True, n_checkpoints=3)
    eager_config = dataclasses.replace(config, compile=False)
    compiled, eager = (
        make_model("vgg16", 3, 1, 8, width=2, seed=1),
        make_model("vgg16", 3, 1, 8, width=2, seed=1),
    )
    fast = train_model(compiled, inputs, labels, config, seed=0, device="cpu", progress=False)
    slow = train_model(eager, inputs, labels, eager_config, seed=0, device="cpu", progress=False)
    assert fast.compiled and not slow.compiled
    for (name, p), q in zip(
        compiled.state_dict().items(), eager.state_dict().values(), strict=True
    ):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(fast.loss_history, slow.loss_history, rtol=1e-4)
    np.testing.assert_allclose(fast.aum, slow.aum, rtol=1e-3, atol=1e-3)  # logits of order 1


def test_compile_falls_back_to_eager_when_disabled(blobs, monkeypatch):
    monkeypatch.setenv("PDLIB_COMPILE", "0")
    inputs, labels = blobs
    config = TrainConfig(epochs=2, batch_size=40, compile=True)
    model, twin = (
        make_model("mlp", 3, 1, 4, width=8, seed=0),
        make_model("mlp", 3, 1, 4, width=8, seed=0),
    )
    result = train_model(model, inputs, labels, config, seed=0, device="cpu", progress=False)
    fit(twin, inputs, labels, dataclasses.replace(config, compile=False))
    assert not result.compiled and same_weights(model, twin)


def test_predict_is_the_eval_mode_argmax_and_restores_the_mode():
    model = make_model("vgg16", 3, 1, 8, width=2, seed=0).train()
    inputs = torch.randn(7, 1, 8, 8)
    got = predict(model, inputs, batch_size=3)
    assert model.training and got.dtype == np.int64
    with torch.no_grad():
        np.testing.assert_array_equal(got, model.eval()(inputs).argmax(1).numpy())


def test_divergence_raises_a_clear_error():
    inputs, labels = torch.randn(64, 1, 4, 4) * 100, torch.randint(0, 3, (64,))
    model = make_model("mlp", 3, 1, 4, width=64, seed=0)
    with pytest.raises(FloatingPointError, match="training diverged.*lower TrainConfig.lr"):
        fit(
            model, inputs, labels, TrainConfig(epochs=5, batch_size=16, lr=1e6, warmup_fraction=0.0)
        )


def test_zero_epochs_leave_the_initialisation(blobs):
    inputs, labels = blobs
    model = make_model("mlp", 3, 1, 4, width=16, seed=3)
    before = copy.deepcopy(model)
    result = train_model(
        model,
        inputs,
        labels,
        TrainConfig(epochs=0, n_checkpoints=2),
        seed=0,
        device="cpu",
        track_inputs=inputs[:5],
        progress=False,
    )
    assert same_weights(before, model)
    assert result.loss_history.shape == (0,) and result.checkpoint_steps.tolist() == [0]
    np.testing.assert_array_equal(result.checkpoint_train_predictions, predict(model, inputs)[None])
    assert np.isnan(result.aum).all() and result.aum.shape == (120,)


# --- learning-rate schedules -------------------------------------------------------------------


def recorded_learning_rates(monkeypatch, model, inputs, labels, config):
    seen = []
    original = torch.optim.SGD

    class Spy(original):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "SGD", Spy)
    train_model(model, inputs, labels, config, seed=0, device="cpu", progress=False)
    return seen


def test_constant_schedule_keeps_the_learning_rate(blobs, monkeypatch):
    inputs, labels = blobs
    seen = recorded_learning_rates(
        monkeypatch,
        make_model("mlp", 3, 1, 4, width=8, seed=0),
        inputs,
        labels,
        TrainConfig(epochs=3, batch_size=40, lr=0.01, schedule="constant"),
    )
    assert seen == [0.01] * 9


def test_warmup_then_linear_decay(blobs, monkeypatch):
    inputs, labels = blobs
    config = TrainConfig(
        epochs=5, batch_size=30, lr=0.1, warmup_fraction=0.2
    )  # 20 steps, 4 of warm-up
    seen = recorded_learning_rates(
        monkeypatch, make_model("mlp", 3, 1, 4, width=8, seed=0), inputs, labels, config
    )
    expected = [0.1 * (s / 4 if s < 4 else (20 - s) / 16) for s in range(20)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12, atol=1e-15)


# --- 0-Hinge and stopping at zero loss ---------------------------------------------------------

HINGE = TrainConfig(
    epochs=3000,
    batch_size=120,
    lr=0.002,
    momentum=0.9,
    weight_decay=0.0,
    warmup_fraction=0.0,
    loss="zero_hinge",
    schedule="constant",
    stop_at_zero_loss=True,
    n_checkpoints=4,
)


def test_zero_hinge_full_batch_stops_at_the_first_zero_loss_step(blobs):
    inputs, labels = blobs
    model = make_model("mlp", 3, 1, 4, width=16, seed=0)
    result = train_model(
        model, inputs, labels, HINGE, seed=0, device="cpu", track_inputs=inputs, progress=False
    )
    assert result.train_accuracy == 1.0
    # every step before the last had a positive loss; the last "epoch" found it 0 and did not step
    assert result.loss_history[-1] == 0.0 and (result.loss_history[:-1] > 0).all()
    n_steps = len(result.loss_history) - 1
    assert 0 < n_steps < 3000 and result.checkpoint_steps[-1] == n_steps
    with torch.no_grad():
        logits = model.eval()(inputs)
    assert float(zero_hinge_loss(logits, labels)) == 0.0
    np.testing.assert_array_equal(result.checkpoint_predictions[-1], logits.argmax(1).numpy())
    # the same network trained for exactly n_steps steps without the stop: the same weights
    exact = make_model("mlp", 3, 1, 4, width=16, seed=0)
    fixed = fit(
        exact,
        inputs,
        labels,
        dataclasses.replace(HINGE, epochs=n_steps, stop_at_zero_loss=False, n_checkpoints=0),
    )
    assert same_weights(model, exact) and (fixed.loss_history > 0).all()
    # Cross-entropy keeps pushing margins up; 0-Hinge stops at the first separating weights.
    ce_model = make_model("mlp", 3, 1, 4, width=16, seed=0)
    fit(ce_model, inputs, labels, TrainConfig(epochs=40, batch_size=30, lr=0.05))
    with torch.no_grad():
        ce_margin = output_margin(ce_model.eval()(inputs).numpy()).mean()
    assert output_margin(logits.numpy()).mean() < ce_margin / 3


def test_a_network_that_starts_fitted_takes_no_step(blobs):
    inputs, labels = blobs
    model = make_model("mlp", 3, 1, 4, width=16, seed=0)
    fit(model, inputs, labels, TrainConfig(epochs=40, batch_size=30, lr=0.05))
    fitted = copy.deepcopy(model)
    result = fit(model, inputs, labels, dataclasses.replace(HINGE, n_checkpoints=0))
    assert result.loss_history.tolist() == [0.0] and same_weights(model, fitted)


def test_stop_at_zero_loss_needs_full_batches(blobs):
    inputs, labels = blobs
    with pytest.raises(ValueError, match="full-batch"):
        train_model(
            make_model("mlp", 3, 1, 4, width=8, seed=0),
            inputs,
            labels,
            TrainConfig(epochs=2, batch_size=10, stop_at_zero_loss=True),
            seed=0,
            device="cpu",
            progress=False,
        )


# --- micro-batches -----------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["cross_entropy", "zero_hinge"])
@pytest.mark.parametrize("batch_size", [120, 32])
def test_micro_batches_give_the_same_update_as_one_pass(blobs, loss, batch_size):
    inputs, labels = blobs
    base = TrainConfig(
        epochs=3 if batch_size == 120 else 1,
        batch_size=batch_size,
        lr=0.05,
        loss=loss,
        weight_decay=5e-4,
    )
    models, results = [], []
    for micro_batch in (0, 7):
        model = make_model("mlp", 3, 1, 4, width=16, seed=2)
        results.append(
            fit(model, inputs, labels, dataclasses.replace(base, micro_batch=micro_batch))
        )
        models.append(model)
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    assert not same_weights(models[0], make_model("mlp", 3, 1, 4, width=16, seed=2))  # it did train
    np.testing.assert_allclose(results[0].loss_history, results[1].loss_history, rtol=1e-5)
    np.testing.assert_allclose(results[0].aum, results[1].aum, rtol=1e-5, atol=1e-5)


# --- area under the margin ---------------------------------------------------------------------


def test_aum_is_the_mean_margin_over_epochs_by_a_loop(blobs):
    """Full-batch gradient descent without momentum, written out: the margins of each epoch's
    forward pass."""
    inputs, labels = blobs
    config = TrainConfig(
        epochs=6, batch_size=120, lr=0.1, momentum=0.0, weight_decay=0.0, schedule="constant"
    )
    model = make_model("mlp", 3, 1, 4, width=8, seed=4)
    oracle = copy.deepcopy(model)
    result = train_model(model, inputs, labels, config, seed=0, device="cpu", progress=False)
    margins = []
    for _ in range(config.epochs):
        logits = oracle(inputs)
        rows = []
        for i, y in enumerate(labels.tolist()):
            row = logits[i].tolist()
            rows.append(row[y] - max(v for c, v in enumerate(row) if c != y))
        margins.append(rows)
        oracle.zero_grad()
        F.cross_entropy(logits, labels).backward()
        with torch.no_grad():
            for p in oracle.parameters():
                p -= config.lr * p.grad
    np.testing.assert_allclose(result.aum, np.mean(margins, axis=0), rtol=1e-4, atol=1e-5)
    for p, q in zip(model.parameters(), oracle.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    # a point's margin is negative exactly when another class outscores its label
    assert (np.min(margins, axis=0) < 0).any() and (np.max(margins, axis=0) > 0).any()


def test_aum_with_mini_batches_by_a_loop(blobs):
    """Each point's margin is read off the forward pass of its own mini-batch, in the seeded
    order."""
    inputs, labels = blobs
    config = TrainConfig(
        epochs=3, batch_size=40, lr=0.05, momentum=0.0, weight_decay=0.0, schedule="constant"
    )
    model = make_model("mlp", 3, 1, 4, width=8, seed=4)
    oracle = copy.deepcopy(model)
    result = train_model(model, inputs, labels, config, seed=7, device="cpu", progress=False)
    generator, total = torch.Generator().manual_seed(7), np.zeros(120)
    for _ in range(config.epochs):
        for batch in torch.randperm(120, generator=generator).tensor_split(3):
            logits = oracle(inputs[batch])
            for row, i in zip(logits.tolist(), batch.tolist(), strict=True):
                y = int(labels[i])
                total[i] += row[y] - max(v for c, v in enumerate(row) if c != y)
            oracle.zero_grad()
            F.cross_entropy(logits, labels[batch]).backward()
            with torch.no_grad():
                for p in oracle.parameters():
                    p -= config.lr * p.grad
    np.testing.assert_allclose(result.aum, total / config.epochs, rtol=1e-4, atol=1e-5)


# --- the initial scale of the head -------------------------------------------------------------


@pytest.mark.parametrize("arch, width", [("mlp", 8), ("vgg16", 2), ("resnet18", 2)])
@pytest.mark.parametrize("scale", [1e-4, 0.5])
def test_head_init_scale_scales_only_the_heads_initial_weights(arch, width, scale):
    plain = make_model(arch, 4, 1, 8, width=width, seed=5)
    scaled = make_model(arch, 4, 1, 8, width=width, seed=5, head_init_scale=scale)
    torch.testing.assert_close(scaled.head.weight, scale * plain.head.weight, rtol=1e-6, atol=0)
    assert (scaled.head.bias == 0).all() and (plain.head.bias == 0).all()
    for (name, p), q in zip(plain.state_dict().items(), scaled.state_dict().values(), strict=True):
        if not name.startswith("head."):
            assert torch.equal(p, q), name
    with torch.no_grad():
        x = torch.randn(3, 1, 8, 8)
        torch.testing.assert_close(scaled.eval()(x), scale * plain.eval()(x), rtol=1e-4, atol=1e-8)


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"loss": "mse"}, "loss must be one of"),
        ({"schedule": "cosine"}, "schedule must be one of"),
        ({"epochs": -1}, "epochs must be an integer >= 0"),
        ({"epochs": 2.0}, "epochs must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"micro_batch": -1}, "micro_batch must be an integer >= 0"),
        ({"n_checkpoints": -2}, "n_checkpoints must be an integer >= 0"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
        ({"weight_decay": -1e-4}, "weight_decay must be non-negative"),
    ],
)
def test_bad_training_configs(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_replace_keeps_validation():
    with pytest.raises(ValueError, match="loss"):
        dataclasses.replace(TrainConfig(), loss="hinge")


def test_bad_training_inputs(blobs):
    inputs, labels = blobs
    model = make_model("mlp", 3, 1, 4, width=8, seed=0)
    with pytest.raises(ValueError, match="labels has 10 entries but inputs has 120"):
        train_model(
            model, inputs, labels[:10], TrainConfig(epochs=1), seed=0, device="cpu", progress=False
        )
    with pytest.raises(ValueError, match="labels must be non-negative"):
        train_model(
            model,
            inputs,
            -np.ones(120, int),
            TrainConfig(epochs=1),
            seed=0,
            device="cpu",
            progress=False,
        )
