"""Architectures, probe points, and one-pass embedding capture."""

import numpy as np
import pytest
import torch
from torch import nn

from pdlib import capture_embeddings, make_model, probe_points

EXPECTED_PROBES = {"mlp": 9, "vgg16": 15, "resnet18": 11}


@pytest.mark.parametrize("arch, n_probes", EXPECTED_PROBES.items())
@pytest.mark.parametrize("in_channels, image_size", [(1, 28), (3, 32), (1, 8)])
def test_probe_points_and_shapes(arch, n_probes, in_channels, image_size):
    model = make_model(arch, 10, in_channels, image_size, width=4 if arch != "mlp" else 16, seed=0)
    names = model.probe_points
    assert len(names) == n_probes and names[0] == "input" and names[-1] == "softmax"
    assert probe_points(model) == names
    assert model(torch.zeros(2, in_channels, image_size, image_size)).shape == (2, 10)


def test_default_widths_follow_the_paper():
    mlp = make_model("mlp", 10, 1, 28)
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [2048] * 7 + [10]
    vgg = make_model("vgg16", 10, 3, 32)
    convs = [m.out_channels for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    resnet = make_model("resnet18", 10, 3, 32)
    assert resnet.stem[0].kernel_size == (3, 3)
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet.modules())  # CIFAR-style: no max-pool
    n_params = sum(p.numel() for p in resnet.parameters())
    assert 11.0e6 < n_params < 11.3e6  # the usual CIFAR ResNet18 size


def test_seed_makes_initialisation_reproducible():
    a = make_model("resnet18", 10, 3, 32, width=4, seed=3)
    b = make_model("resnet18", 10, 3, 32, width=4, seed=3)
    c = make_model("resnet18", 10, 3, 32, width=4, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


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


@pytest.mark.parametrize("arch", EXPECTED_PROBES)
def test_hooks_capture_what_a_manual_forward_computes(arch):
    torch.manual_seed(0)
    model = make_model(arch, 5, 3, 16, width=4 if arch != "mlp" else 32, seed=1)
    # train-mode passes move the BN running statistics away from their initial values
    with torch.no_grad():
        for _ in range(3):
            model.train()(torch.randn(16, 3, 16, 16) * 2 + 1)
    x = torch.randn(37, 3, 16, 16)
    captured = capture_embeddings(model.train(), x, batch_size=10, progress=False)
    assert model.training, "capture restores the model's mode"
    expected, logits = manual_embeddings(model, x)
    assert list(captured.embeddings) == list(model.probe_points)
    for name, want in zip(model.probe_points, expected):
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
    captured = capture_embeddings(model, torch.randn(5, 2, 2), probes=["input", "2", "softmax"], progress=False)
    assert [e.shape for e in captured.embeddings.values()] == [(5, 4), (5, 6), (5, 3)]
    assert (captured.embeddings["2"] >= 0).all()
    with pytest.raises(ValueError, match="no probe_points attribute"):
        capture_embeddings(model, torch.randn(5, 2, 2), progress=False)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: make_model("alexnet", 10, 3, 32), ValueError, "arch must be one of"),
        (lambda: make_model("mlp", 1, 3, 32), ValueError, "n_classes"),
        (lambda: make_model("mlp", 10, 0, 32), ValueError, "in_channels"),
        (lambda: make_model("mlp", 10, 3, 32, width=0), ValueError, "width"),
        (lambda: probe_points(make_model("mlp", 10, 1, 4, width=4), ["input", "hidden9"]), ValueError, "no module named 'hidden9'"),
        (lambda: probe_points(make_model("mlp", 10, 1, 4, width=4), "input"), TypeError, "probes must be a sequence"),
        (lambda: capture_embeddings(make_model("mlp", 10, 1, 4, width=4), torch.zeros(0, 1, 4, 4)), ValueError, "inputs must be a non-empty"),
        (lambda: capture_embeddings(make_model("mlp", 10, 1, 4, width=4), torch.zeros(3, 1, 4, 4, dtype=torch.long)), TypeError, "inputs must be floating"),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
