"""Output and input margins and the 0-Hinge loss against oracles: sorting, loops, the exact
distance to a linear model's decision boundary, and a brute-force line search."""

import numpy as np
import pytest
import torch
from torch import nn

from pdlib import input_margin, output_margin, zero_hinge_loss

N_CLASSES, N_FEATURES = 5, 7


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- output margin


def test_output_margin_matches_sorted_oracle(rng):
    logits = rng.normal(size=(50, 6))
    top = np.sort(logits, axis=1)
    np.testing.assert_allclose(output_margin(logits), top[:, -1] - top[:, -2], rtol=0, atol=1e-12)


def test_output_margin_matches_loop(rng):
    logits = rng.integers(-3, 4, size=(40, 4))  # integers: many ties
    expected = []
    for row in logits:
        best = int(np.argmax(row))
        expected.append(row[best] - max(row[j] for j in range(len(row)) if j != best))
    margin = output_margin(logits)
    assert margin.dtype == np.float64 and margin.shape == (40,)
    np.testing.assert_array_equal(margin, expected)


def test_output_margin_known_values_and_tensor_input():
    logits = torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, 3.0], [-1.0, -4.0, -2.5]])
    np.testing.assert_allclose(output_margin(logits), [1.0, 0.0, 1.5])


@pytest.mark.parametrize(
    "logits, error",
    [
        ([1.0, 2.0], ValueError),  # 1-D
        (np.zeros((0, 3)), ValueError),  # empty
        (np.zeros((4, 1)), ValueError),  # one class
        ([[1.0, np.nan]], ValueError),
        ([[1.0, np.inf]], ValueError),
        ([["a", "b"]], TypeError),
        (None, TypeError),
        (3.0, TypeError),
    ],
)
def test_output_margin_bad_input(logits, error):
    with pytest.raises(error, match="logits"):
        output_margin(logits)


# ----------------------------------------------------------------------------- input margin


def linear_model(bias: bool, flatten: bool, seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.Linear(N_FEATURES if not flatten else 9, N_CLASSES, bias=bias)
    model = nn.Sequential(nn.Flatten(), layer) if flatten else layer
    return model.to(dtype)


def weights(model: nn.Module):
    layer = model[-1] if isinstance(model, nn.Sequential) else model
    w = layer.weight.detach().double().numpy()
    b = layer.bias.detach().double().numpy() if layer.bias is not None else np.zeros(w.shape[0])
    return w, b


def closed_form_distance(w, b, x):
    """Exact distance from each row of x (n, d) to the nearest boundary of its argmax class."""
    z = x @ w.T + b
    out = np.empty(len(x))
    for n, logits in enumerate(z):
        i = int(np.argmax(logits))
        out[n] = min(
            abs(logits[i] - logits[j]) / np.linalg.norm(w[i] - w[j])
            for j in range(len(w))
            if j != i
        )
    return out


def predicted(model, points, shape):
    with torch.no_grad():
        return model(torch.as_tensor(points).reshape(-1, *shape)).argmax(dim=1).numpy()


def crossing_distance(model, point, direction, shape, i, steps=60):
    """Bisection for the distance along ``direction`` at which the prediction leaves class ``i``."""
    lo, hi = 0.0, 1.0
    while predicted(model, point + hi * direction, shape)[0] == i:
        lo, hi = hi, 2 * hi
        if hi > 1e6:
            return np.inf
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (
            (mid, hi) if predicted(model, point + mid * direction, shape)[0] == i else (lo, mid)
        )
    return (lo + hi) / 2


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("flatten", [False, True], ids=["vector", "image"])
def test_input_margin_is_exact_for_linear_models(bias, flatten):
    model = linear_model(bias, flatten)
    shape = (1, 3, 3) if flatten else (N_FEATURES,)
    torch.manual_seed(1)
    inputs = torch.randn(12, *shape, dtype=torch.float64)
    margin = input_margin(model, inputs, batch_size=5)
    assert margin.dtype == np.float64 and margin.shape == (12,)

    w, b = weights(model)
    x = inputs.reshape(12, -1).numpy()
    np.testing.assert_allclose(margin, closed_form_distance(w, b, x), rtol=1e-10)

    # Brute force, with no closed form: walk towards each boundary i|j along its unit normal
    # and find where the prediction changes; the nearest crossing is the margin.
    for n in range(len(x)):
        i = int(predicted(model, x[n], shape)[0])
        crossings = []
        for j in range(N_CLASSES):
            if j != i:
                normal = (w[i] - w[j]) / np.linalg.norm(w[i] - w[j])
                crossings.append(crossing_distance(model, x[n], -normal, shape, i))
        np.testing.assert_allclose(min(crossings), margin[n], rtol=1e-4)


@pytest.mark.parametrize("bias", [False, True])
def test_no_direction_crosses_before_the_margin(bias, rng):
    model = linear_model(bias, flatten=False, seed=2)
    torch.manual_seed(3)
    inputs = torch.randn(10, N_FEATURES, dtype=torch.float64)
    margin = input_margin(model, inputs)
    directions = rng.normal(size=(2000, N_FEATURES))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    x = inputs.numpy()
    for n in range(len(x)):
        i = predicted(model, x[n], (N_FEATURES,))[0]
        # The class region is convex (an intersection of half-spaces), so staying in it at
        # distance just under the margin means staying in it all the way there.
        inside = x[n] + 0.999 * margin[n] * directions
        assert (predicted(model, inside, (N_FEATURES,)) == i).all()


def test_input_margin_float32_model_and_numpy_inputs():
    model = linear_model(True, flatten=False, dtype=torch.float32)
    inputs = np.random.default_rng(4).normal(size=(20, N_FEATURES))  # float64, cast to float32
    w, b = weights(model)
    expected = closed_form_distance(w, b, inputs.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(input_margin(model, inputs, device="cpu"), expected, rtol=1e-4)


def mlp_with_batchnorm() -> nn.Module:
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4)
    ).double()
    with torch.no_grad():  # non-trivial running statistics
        for _ in range(3):
            model(torch.randn(32, 2, 3, dtype=torch.float64) * 2 + 1)
    return model


def margins_by_jacobian(model, inputs):
    """One point at a time with torch's Jacobian, and a loop over the classes."""
    model.eval()
    out = []
    for x in inputs:
        z = model(x[None])[0].detach()
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], x).reshape(len(z), -1)
        i = int(z.argmax())
        out.append(
            min(
                float((z[i] - z[j]).abs() / (jac[i] - jac[j]).norm())
                for j in range(len(z))
                if j != i
            )
        )
    return np.array(out)


def test_input_margin_on_mlp_restores_state_and_ignores_batch_size():
    model = mlp_with_batchnorm()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(6)
    inputs = torch.randn(11, 2, 3, dtype=torch.float64)

    small = input_margin(model, inputs, batch_size=3)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert not inputs.requires_grad
    for key, value in model.state_dict().items():  # eval mode: running stats untouched
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)

    large = input_margin(model, inputs, batch_size=1000)
    single = input_margin(model, inputs, batch_size=1)
    np.testing.assert_allclose(small, large, rtol=1e-6)
    np.testing.assert_allclose(single, large, rtol=1e-6)
    np.testing.assert_allclose(large, margins_by_jacobian(model, inputs), rtol=1e-8)
    assert np.all(large > 0) and np.all(np.isfinite(large))


def test_input_margin_under_inference_mode():
    model = linear_model(True, flatten=False)
    inputs = torch.randn(4, N_FEATURES, dtype=torch.float64)
    expected = input_margin(model, inputs)
    with torch.inference_mode():
        np.testing.assert_array_equal(input_margin(model, inputs), expected)


def test_input_margin_zero_gradient_gives_inf():
    constant = nn.Linear(3, 3)
    with torch.no_grad():
        constant.weight.zero_()
        constant.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
    assert np.all(np.isposinf(input_margin(constant, torch.randn(4, 3))))

    dead = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        dead[0].bias.fill_(-1e3)  # every ReLU is off: the logits do not depend on the input
    assert np.all(np.isposinf(input_margin(dead, torch.randn(4, 3))))

    # Classes 0 and 1 tie everywhere with the same gradient (+inf); class 2 gives the margin.
    partial = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        partial.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    margin = input_margin(partial, torch.tensor([[3.0, 1.0]]))
    np.testing.assert_allclose(margin, [2 / np.sqrt(2)], rtol=1e-6)


@pytest.mark.parametrize(
    "model, inputs, kwargs, error, name",
    [
        ("not a model", torch.randn(3, 4), {}, TypeError, "model"),
        (nn.Linear(4, 3), torch.randn(4), {}, ValueError, "inputs"),
        (nn.Linear(4, 3), torch.randn(0, 4), {}, ValueError, "inputs"),
        (nn.Linear(4, 3), torch.ones(3, 4, dtype=torch.int64), {}, TypeError, "inputs"),
        (nn.Linear(4, 3), "abc", {}, TypeError, "inputs"),
        (nn.Linear(4, 3), torch.randn(3, 4), {"batch_size": 0}, ValueError, "batch_size"),
        (nn.Linear(4, 3), torch.randn(3, 4), {"batch_size": 2.5}, TypeError, "batch_size"),
        (nn.Linear(4, 1), torch.randn(3, 4), {}, ValueError, "n_classes"),
        (
            nn.Sequential(nn.Linear(4, 3), nn.Flatten(0)),
            torch.randn(3, 4),
            {},
            ValueError,
            "model output",
        ),
        (nn.Linear(4, 3), torch.full((2, 4), float("nan")), {}, ValueError, "NaN"),
    ],
)
def test_input_margin_bad_input(model, inputs, kwargs, error, name):
    with pytest.raises(error, match=name):
        input_margin(model, inputs, **kwargs)


# ----------------------------------------------------------------------------- 0-Hinge loss


def hinge_by_loop(logits, targets):
    total = 0.0
    for row, y in zip(logits.tolist(), targets.tolist(), strict=True):
        total += sum(max(0.0, row[j] - row[y]) for j in range(len(row)) if j != y)
    return total / len(logits)


def test_zero_hinge_is_zero_when_every_point_is_correct():
    torch.manual_seed(7)
    for scale in (1e-3, 1.0, 1e3):
        logits = torch.randn(30, 6, dtype=torch.float64) * scale
        assert zero_hinge_loss(logits, logits.argmax(dim=1)).item() == 0.0
    tied = torch.tensor([[1.0, 1.0, 0.0]])  # a tie counts as correct: no margin needed
    assert zero_hinge_loss(tied, [0]).item() == 0.0


def test_zero_hinge_matches_loop():
    torch.manual_seed(8)
    logits = torch.randn(40, 5, dtype=torch.float64)
    targets = torch.randint(0, 5, (40,))
    loss = zero_hinge_loss(logits, targets)
    assert loss.ndim == 0 and loss.item() > 0
    assert loss.item() == pytest.approx(hinge_by_loop(logits, targets), rel=1e-12)
    # Array-like targets give the same loss.
    assert zero_hinge_loss(logits, targets.numpy().tolist()).item() == loss.item()


def test_zero_hinge_gradient_pushes_the_true_class_up():
    torch.manual_seed(9)
    logits = torch.randn(20, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 4, (20,))
    loss = zero_hinge_loss(logits, targets)
    (grad,) = torch.autograd.grad(loss, logits)
    rows = torch.arange(20)
    true_grad = grad[rows, targets]
    violations = (logits.detach() > logits.detach()[rows, targets, None]).sum(dim=1)
    # d loss / d z_y = -(number of classes above y) / n; violating classes get +1 / n.
    torch.testing.assert_close(true_grad, -violations.double() / 20)
    assert (grad >= -1e-12).sum() >= grad.numel() - 20  # only the true logits are pushed up
    with torch.no_grad():
        stepped = zero_hinge_loss(logits - 0.01 * grad, targets)
    assert stepped.item() < loss.item()


@pytest.mark.parametrize(
    "logits, targets, error, name",
    [
        ([[1.0, 2.0]], [0], TypeError, "logits"),
        (torch.tensor([[1, 2]]), [0], TypeError, "logits"),
        (torch.randn(3), [0, 1, 0], ValueError, "logits"),
        (torch.randn(3, 1), [0, 0, 0], ValueError, "logits"),
        (torch.randn(0, 3), [], ValueError, "logits"),
        (torch.randn(3, 4), [0, 1], ValueError, "targets"),
        (torch.randn(3, 4), [[0, 1, 2]], ValueError, "targets"),
        (torch.randn(3, 4), [0, 1, 4], ValueError, "targets"),
        (torch.randn(3, 4), [0, -1, 2], ValueError, "targets"),
        (torch.randn(3, 4), [0.0, 1.0, 2.0], TypeError, "targets"),
        (torch.randn(3, 4), None, TypeError, "targets"),
    ],
)
def test_zero_hinge_bad_input(logits, targets, error, name):
    with pytest.raises(error, match=name):
        zero_hinge_loss(logits, targets)
