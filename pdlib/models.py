"""The paper's three architectures, each carrying its ordered list of probe points.

Probes: ``"input"`` (normalised, flattened), one point after each hidden block's activation, and
``"softmax"``. mlp: ``hidden1`` .. ``hidden7`` (9 probes); vgg16: ``conv1`` .. ``conv13`` (15);
resnet18: ``stem``, ``block1`` .. ``block8`` (11). Other modules can be probed by module name.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["make_model", "probe_points", "ARCHITECTURES", "INPUT", "SOFTMAX"]

INPUT = "input"
SOFTMAX = "softmax"

#: Default width of each architecture: hidden units (mlp) or first-stage channels (conv nets).
DEFAULT_WIDTH = {"mlp": 2048, "vgg16": 64, "resnet18": 64}
ARCHITECTURES = tuple(DEFAULT_WIDTH)


def _hidden_block(layer: nn.Module, *extra: nn.Module) -> nn.Sequential:
    return nn.Sequential(layer, *extra, nn.ReLU())


class MLP(nn.Module):
    """``depth`` fully connected hidden layers of ``width`` ReLU units, then a linear head."""

    def __init__(self, n_classes: int, in_features: int, width: int = 2048, depth: int = 7):
        super().__init__()
        self.flatten = nn.Flatten()
        for i in range(depth):
            self.add_module(
                f"hidden{i + 1}", _hidden_block(nn.Linear(in_features if i == 0 else width, width))
            )
        self.head = nn.Linear(width, n_classes)
        self.probe_points = (INPUT, *(f"hidden{i + 1}" for i in range(depth)), SOFTMAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)
        for name in self.probe_points[1:-1]:
            x = getattr(self, name)(x)
        return self.head(x)


#: VGG16's convolutional layers in channel multiples of ``width``; "M" is a 2x2 max-pool.
_VGG16_PLAN = (1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M")


class VGG16(nn.Module):
    """CIFAR-style VGG16 with batch norm: 13 conv layers, 5 max-pools (``ceil_mode``: 28x28 and 8x8
    inputs survive)."""

    def __init__(self, n_classes: int, in_channels: int, width: int = 64):
        super().__init__()
        channels, n_conv, n_pool, self._order = in_channels, 0, 0, []
        for step in _VGG16_PLAN:
            if step == "M":
                n_pool += 1
                name, layer = f"pool{n_pool}", nn.MaxPool2d(2, ceil_mode=True)
            else:
                n_conv += 1
                out = step * width
                name = f"conv{n_conv}"
                layer = _hidden_block(
                    nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out)
                )
                channels = out
            self.add_module(name, layer)
            self._order.append(name)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, n_classes)
        self.probe_points = (INPUT, *(f"conv{i + 1}" for i in range(n_conv)), SOFTMAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._order:
            x = getattr(self, name)(x)
        return self.head(torch.flatten(self.pool(x), 1))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet18: 3x3 stem without max-pool, four stages of two basic blocks."""

    def __init__(self, n_classes: int, in_channels: int, width: int = 64):
        super().__init__()
        self.stem = _hidden_block(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        )
        channels, blocks = width, []
        for stage, multiple in enumerate((1, 2, 4, 8)):
            for i in range(2):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, multiple * width, stride))
                channels = multiple * width
        for i, block in enumerate(blocks):
            self.add_module(f"block{i + 1}", block)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, n_classes)
        self.probe_points = (INPUT, "stem", *(f"block{i + 1}" for i in range(len(blocks))), SOFTMAX)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.probe_points[1:-1]:
            x = getattr(self, name)(x)
        return self.head(torch.flatten(self.pool(x), 1))


def _init_weights(model: nn.Module) -> None:
    """He initialisation: with PyTorch's default, a 7-layer ReLU MLP barely trains."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def make_model(
    arch: str,
    n_classes: int,
    in_channels: int,
    image_size: int,
    *,
    width: int | None = None,
    seed: int | None = None,
    head_init_scale: float = 1.0,
) -> nn.Module:
    """Build one of the paper's architectures, with ``probe_points`` (``"input"`` first,
    ``"softmax"`` last).

    Parameters
    ----------
    arch : {"mlp", "vgg16", "resnet18"}
    n_classes, in_channels, image_size : int
        Output classes, input channels and input height (= width) in pixels.
    width : int, optional
        Hidden units (mlp, 2048) or first-stage channels (vgg16, resnet18: 64, later stages 2x, 4x,
        8x).
    seed : int, optional
        Seeds the initialisation; the global RNG is left untouched.
    head_init_scale : float
        Factor on the last layer's initial weights (1e-4: the tiny logits 0-Hinge needs).

    Returns
    -------
    nn.Module

    Examples
    --------
    >>> len(make_model("resnet18", 10, 3, 32, width=4).probe_points)
    11
    """
    if not isinstance(arch, str) or arch not in DEFAULT_WIDTH:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}; got {arch!r}")
    for value, name in (
        (n_classes, "n_classes"),
        (in_channels, "in_channels"),
        (image_size, "image_size"),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    width = DEFAULT_WIDTH[arch] if width is None else width
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if arch == "mlp":
            model = MLP(n_classes, in_channels * image_size * image_size, width)
        elif arch == "vgg16":
            model = VGG16(n_classes, in_channels, width)
        else:
            model = ResNet18(n_classes, in_channels, width)
        _init_weights(model)
        with torch.no_grad():
            model.head.weight.mul_(head_init_scale)
    return model


def probe_points(model: nn.Module, probes=None) -> tuple[str, ...]:
    """The ordered probe names of ``model`` (or ``probes``: input, softmax, module names),
    checked."""
    if probes is None:
        probes = getattr(model, "probe_points", None)
        if probes is None:
            raise ValueError(
                f"{type(model).__name__} has no probe_points attribute; pass probes=[...] with "
                "'input', module names from model.named_modules() and 'softmax'"
            )
    if isinstance(probes, str) or not all(isinstance(p, str) for p in probes):
        raise TypeError("probes must be a sequence of probe names (str)")
    probes = tuple(probes)
    if not probes:
        raise ValueError("probes is empty")
    modules = dict(model.named_modules())
    unknown = [p for p in probes if p not in (INPUT, SOFTMAX) and p not in modules]
    if unknown:
        available = [name for name in modules if name]
        raise ValueError(
            f"probes: model {type(model).__name__} has no module named {unknown[0]!r}; available: "
            f"'input', 'softmax', {', '.join(map(repr, available[:40]))}"
        )
    if len(set(probes)) != len(probes):
        raise ValueError("probes contains duplicate names")
    return probes
