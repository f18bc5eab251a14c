"""pdlib.models: the three architectures, their probe points, default widths and seeded
initialisation."""

import pytest
import torch
from torch import nn

from pdlib import make_model, probe_points

EXPECTED_PROBES = {"mlp": 9, "vgg16": 15, "resnet18": 11}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch, n_probes", EXPECTED_PROBES.items())
@pytest.mark.parametrize("in_channels, image_size", [(1, 28), (3, 32), (1, 8)])
def test_probe_points_and_shapes(arch, n_probes, in_channels, image_size):
    model = make_model(arch, 10, in_channels, image_size, width=2 if arch != "mlp" else 16, seed=0)
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
    assert not any(
        isinstance(m, nn.MaxPool2d) for m in resnet.modules()
    )  # CIFAR-style: no max-pool
    n_params = sum(p.numel() for p in resnet.parameters())
    assert 11.0e6 < n_params < 11.3e6  # the usual CIFAR ResNet18 size


def test_seed_leaves_the_global_generator_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    make_model("mlp", 3, 1, 4, width=8, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_custom_probes_are_kept_in_the_given_order():
    model = make_model("resnet18", 3, 1, 8, width=2)
    assert probe_points(model, ["input", "block3", "stem", "softmax"]) == (
        "input",
        "block3",
        "stem",
        "softmax",
    )
    assert probe_points(model, ("block8",)) == ("block8",)


def test_seed_makes_initialisation_reproducible():
    a = make_model("resnet18", 10, 3, 32, width=4, seed=3)
    b = make_model("resnet18", 10, 3, 32, width=4, seed=3)
    c = make_model("resnet18", 10, 3, 32, width=4, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: make_model("alexnet", 10, 3, 32), ValueError, "arch must be one of"),
        (lambda: make_model("mlp", 1, 3, 32), ValueError, "n_classes"),
        (lambda: make_model("mlp", 10, 0, 32), ValueError, "in_channels"),
        (lambda: make_model("mlp", 10, 3, 32, width=0), ValueError, "width"),
        (lambda: make_model("mlp", True, 1, 4), ValueError, "n_classes must be a positive integer"),
        (lambda: make_model("mlp", 10, 1, 4.0), ValueError, "image_size"),
        (lambda: make_model("vgg16", 10, 3, 32, width=True), ValueError, "width"),
        (lambda: make_model(None, 10, 3, 32), ValueError, "arch must be one of"),
        (
            lambda: probe_points(make_model("mlp", 10, 1, 4, width=4), []),
            ValueError,
            "probes is empty",
        ),
        (
            lambda: probe_points(make_model("mlp", 10, 1, 4, width=4), ["input", "input"]),
            ValueError,
            "duplicate",
        ),
        (
            lambda: probe_points(make_model("mlp", 10, 1, 4, width=4), ["input", 3]),
            TypeError,
            "probes must be",
        ),
        (lambda: probe_points(nn.Linear(2, 2)), ValueError, "no probe_points attribute"),
        (
            lambda: probe_points(make_model("mlp", 10, 1, 4, width=4), ["input", "hidden9"]),
            ValueError,
            "no module named 'hidden9'",
        ),
        (
            lambda: probe_points(make_model("mlp", 10, 1, 4, width=4), "input"),
            TypeError,
            "probes must be a sequence",
        ),
    ],
)
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
