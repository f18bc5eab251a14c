"""pdlib.probes: one-pass capture of every probe (against modules called by hand), probe groups
within a
memory budget, and probe_model end to end against per-probe scikit-learn k-NN."""

import numpy as np
import pytest
import torch
from conftest import gaussian_blobs
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from pdlib import (
    TrainConfig,
    capture_embeddings,
    make_model,
    prediction_depth,
    probe_model,
    train_model,
)
from pdlib.probes import captures, eval_mode, model_device, probe_groups

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained():
    inputs, labels = gaussian_blobs(4, 6, 400, seed=0)
    model = make_model("mlp", 4, 1, 6, width=32, seed=0)
    result = train_model(
        model,
        inputs[:300],
        labels[:300],
        TrainConfig(epochs=20, batch_size=32, lr=0.05),
        seed=0,
        device="cpu",
        progress=False,
    )
    assert result.train_accuracy >= 0.99
    return model, inputs, labels


# --- capture -----------------------------------------------------------------------------------


def manual_embeddings(model, x):
    """The probes computed by calling the modules by hand, no hooks."""
    model.eval()
    with torch.no_grad():
        if isinstance(model, type(make_model("mlp", 2, 1, 2, width=2))):
            out, hidden = model.flatten(x), []
            for name in model.probe_points[1:-1]:
                out = getattr(model, name)(out)
                hidden.append(out)
        elif hasattr(model, "conv13"):  # VGG16
            out, hidden = x, []
            for name, layer in model.named_children():
                if name.startswith(("conv", "pool")) and name != "pool":
                    out = layer(out)
                    if name.startswith("conv"):
                        hidden.append(out)
        else:  # ResNet18
            out, hidden = x, []
            for name in model.probe_points[1:-1]:
                out = getattr(model, name)(out)
                hidden.append(out)
        logits = model(x)
    return [x.flatten(1)] + [h.flatten(1) for h in hidden] + [torch.softmax(logits, 1)], logits


@pytest.mark.parametrize("arch", ["mlp", "vgg16", "resnet18"])
def test_hooks_capture_what_a_manual_forward_computes(arch):
    torch.manual_seed(0)
    model = make_model(arch, 5, 3, 16, width=2 if arch != "mlp" else 32, seed=1)
    # train-mode passes move the BN running statistics away from their initial values
    with torch.no_grad():
        for _ in range(3):
            model.train()(torch.randn(16, 3, 16, 16) * 2 + 1)
    x = torch.randn(37, 3, 16, 16)
    captured = capture_embeddings(model.train(), x, batch_size=10, progress=False)
    assert model.training, "capture restores the model's mode"
    expected, logits = manual_embeddings(model, x)
    assert list(captured.embeddings) == list(model.probe_points)
    for name, want in zip(model.probe_points, expected, strict=True):
        got = captured.embeddings[name]
        assert got.dtype == np.float32 and got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(captured.logits, logits.numpy(), rtol=1e-5, atol=1e-5)


def test_one_forward_pass_per_batch():
    model = make_model("resnet18", 3, 1, 8, width=2, seed=0)
    calls = []
    model.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    capture_embeddings(model, torch.randn(25, 1, 8, 8), batch_size=10, progress=False)
    assert calls == [10, 10, 5]


def test_custom_module_with_named_probes():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    captured = capture_embeddings(
        model, torch.randn(5, 2, 2), probes=["input", "2", "softmax"], progress=False
    )
    assert [e.shape for e in captured.embeddings.values()] == [(5, 4), (5, 6), (5, 3)]
    assert (captured.embeddings["2"] >= 0).all()
    with pytest.raises(ValueError, match="no probe_points attribute"):
        capture_embeddings(model, torch.randn(5, 2, 2), progress=False)


def test_probe_groups_fit_the_memory_budget():
    model = make_model("mlp", 3, 1, 4, width=8, seed=0)
    x = torch.randn(10, 1, 4, 4)
    names = model.probe_points  # input 16 features, hidden 8 each, softmax 3
    assert probe_groups(model, x, names, 10, memory_bytes=10**9) == [names]
    one_each = probe_groups(model, x, names, 10, memory_bytes=1)
    assert one_each == [
        (name,) for name in names
    ]  # a probe larger than the budget still gets its own pass
    groups = probe_groups(
        model, x, names, 10, memory_bytes=4 * 10 * 16
    )  # 640 bytes: input alone, then pairs
    assert groups[0] == ("input",) and all(len(g) == 2 for g in groups[1:-1])
    assert [name for g in groups for name in g] == list(names)
    for group in groups:
        assert (
            len(group) == 1
            or sum(4 * 10 * (16 if n == "input" else 3 if n == "softmax" else 8) for n in group)
            <= 640
        )


def test_captures_by_group_equal_one_capture():
    model = make_model("vgg16", 3, 1, 8, width=2, seed=0)
    sets = [torch.randn(9, 1, 8, 8), torch.randn(4, 1, 8, 8)]
    whole = [capture_embeddings(model, x, batch_size=4, progress=False) for x in sets]
    seen = []
    for group, captured in captures(model, sets, memory_bytes=2000, batch_size=4, progress=False):
        assert len(captured) == 2 and list(captured[0].embeddings) == list(group)
        seen += group
        for got, want in zip(captured, whole, strict=True):
            np.testing.assert_allclose(got.logits, want.logits, rtol=1e-5, atol=1e-7)
            for name in group:
                np.testing.assert_allclose(
                    got.embeddings[name], want.embeddings[name], rtol=1e-5, atol=1e-7
                )
    assert seen == list(model.probe_points)


def test_eval_mode_restores_and_model_device():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    with eval_mode(model):
        assert not model.training
    assert model.training
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("inside")
    assert model.training  # restored on error too
    assert model_device(model) == torch.device("cpu") and model_device(nn.ReLU()) == torch.device(
        "cpu"
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: capture_embeddings(
                make_model("mlp", 10, 1, 4, width=4), torch.zeros(0, 1, 4, 4)
            ),
            ValueError,
            "inputs must be a non-empty",
        ),
        (
            lambda: capture_embeddings(make_model("mlp", 10, 1, 4, width=4), torch.zeros(3)),
            ValueError,
            "inputs must be a non-empty",
        ),
        (
            lambda: capture_embeddings(
                make_model("mlp", 10, 1, 4, width=4), torch.zeros(3, 1, 4, 4, dtype=torch.long)
            ),
            TypeError,
            "inputs must be floating",
        ),
        (
            lambda: capture_embeddings(
                make_model("mlp", 10, 1, 4, width=4), torch.zeros(3, 1, 4, 4), ["hidden9"]
            ),
            ValueError,
            "no module named 'hidden9'",
        ),
    ],
)
def test_capture_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- probe_model -------------------------------------------------------------------------------


def test_probe_model_matches_sklearn_per_probe(trained):
    model, inputs, labels = trained
    train_x, train_y, query_x = inputs[:300], labels[:300].numpy(), inputs[300:]
    result = probe_model(model, train_x, train_y, query_x, k=5, memory_bytes=10_000, progress=False)
    assert result.probe_names == model.probe_points
    train_emb = capture_embeddings(model, train_x, progress=False)
    query_emb = capture_embeddings(model, query_x, progress=False)
    for p, name in enumerate(result.probe_names):
        reference = train_emb.embeddings[name].astype(np.float64)
        clf = KNeighborsClassifier(5, algorithm="brute").fit(reference, train_y)
        np.testing.assert_array_equal(
            result.query_probe_predictions[p], clf.predict(query_emb.embeddings[name])
        )
        neighbours = clf.kneighbors(return_distance=False)  # leave-one-out
        loo = np.stack([np.bincount(train_y[row], minlength=4) for row in neighbours])
        np.testing.assert_array_equal(result.train_votes[p], loo)
    np.testing.assert_array_equal(result.query_network_predictions, query_emb.logits.argmax(1))
    np.testing.assert_array_equal(
        result.train_depth,
        prediction_depth(result.train_probe_predictions, result.train_network_predictions),
    )
    for split in ("train", "query"):  # undecided: the softmax probe disagrees with the network
        np.testing.assert_array_equal(
            getattr(result, f"{split}_undecided"),
            getattr(result, f"{split}_probe_predictions")[-1]
            != getattr(result, f"{split}_network_predictions"),
        )
    assert result.train_votes.dtype == np.uint8 and result.train_votes.shape == (9, 300, 4)
    assert result.query_depth.shape == (100,) and result.query_depth.max() <= 8
    # a clean, well-separated task is decided early
    assert result.query_depth.mean() < 3


def test_probe_model_bad_inputs(trained):
    model, inputs, labels = trained
    with pytest.raises(ValueError, match="train_labels has 10 entries"):
        probe_model(model, inputs[:20], labels[:10], inputs[20:30])
    with pytest.raises(ValueError, match="k=30 is too large"):
        probe_model(model, inputs[:20], labels[:20], inputs[20:30])
    with pytest.raises(ValueError, match="train_labels contains class 7"):
        probe_model(model, inputs[:40], np.full(40, 7), inputs[40:50], k=3)
    with pytest.raises(ValueError, match="no module named"):
        probe_model(model, inputs[:40], labels[:40], inputs[40:50], k=3, probes=["input", "conv1"])


def test_probe_result_accuracy_and_timings(trained):
    model, inputs, labels = trained
    result = probe_model(model, inputs[:300], labels[:300], inputs[300:], k=5, progress=False)
    np.testing.assert_allclose(
        result.probe_accuracy("query", labels[300:].numpy()),
        (result.query_probe_predictions == labels[300:].numpy()).mean(axis=1),
    )
    assert set(result.seconds) == {"capture", "knn"} and all(
        v >= 0 for v in result.seconds.values()
    )
    assert (result.train_votes.sum(axis=2) == 5).all() and (
        result.query_votes.sum(axis=2) == 5
    ).all()
    assert result.query_logits.shape == (100, 4) and result.query_logits.dtype == np.float32
    # the softmax probe of a fitted network agrees with it on nearly every training point
    assert np.mean(result.train_probe_predictions[-1] == result.train_network_predictions) > 0.95


def test_wide_k_uses_wider_vote_counts(trained):
    model, inputs, labels = trained
    result = probe_model(
        model,
        inputs[:300],
        labels[:300],
        inputs[300:310],
        k=260,
        probes=["input", "softmax"],
        progress=False,
    )
    assert result.train_votes.dtype == np.uint16 and (result.train_votes.sum(axis=2) == 260).all()
    assert result.probe_names == ("input", "softmax")
