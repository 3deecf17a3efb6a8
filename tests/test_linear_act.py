"""fusedact.linear_act against the float64 reference: forward and all three gradients, for
every activation and dtype, on ragged shapes. On a machine without a GPU the kernels run
through Triton's interpreter (conftest.py): this is the real kernel code."""
import pytest
import torch

import fusedact
from fusedact import reference
from helpers import FORWARD_TOL, GRAD_TOL, assert_close

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# Activation parameters beside the defaults: a slope/alpha that keeps the output-derivative
# path, and a negative one that makes y ambiguous and so keeps z.
ACTIVATION_CASES = [(name, {}) for name in fusedact.ACTIVATIONS] + [
    ("leaky_relu", {"negative_slope": 0.2}),
    ("leaky_relu", {"negative_slope": -0.3}),
    ("elu", {"alpha": 0.5}),
    ("elu", {"alpha": -0.7}),
]

# (input shape, out_features): 1, primes, one past the interpreter's 64-wide blocks in every
# dimension, a 3-D and a 1-D input.
SHAPES = [
    ((1, 1), 1),
    ((7, 13), 5),
    ((65, 33), 67),
    ((2, 3, 17), 11),
    ((19,), 7),
]


def _param(name, kwargs):
    return next(iter(kwargs.values()), {"leaky_relu": 0.01, "elu": 1.0}.get(name, 0.0))


def _inputs(shape, out_features, dtype, device, bias=True):
    in_features = shape[-1]
    # Unit-variance pre-activations, so every activation is exercised on both sides of 0.
    x = torch.randn(shape, device=device).to(dtype).requires_grad_()
    weight = (torch.randn(out_features, in_features, device=device) / in_features ** 0.5).to(dtype).requires_grad_()
    b = (0.5 * torch.randn(out_features, device=device)).to(dtype).requires_grad_() if bias else None
    return x, weight, b


def _check(x, weight, bias, name, kwargs, dtype):
    y = fusedact.linear_act(x, weight, bias, name, **kwargs)
    assert y.dtype == x.dtype and y.shape == (*x.shape[:-1], weight.shape[0])
    param = _param(name, kwargs)
    assert_close(y, reference.linear_act(x, weight, bias, name, param), FORWARD_TOL[dtype], what="y")

    grad_output = torch.randn_like(y)
    y.backward(grad_output)
    dx, dw, db = reference.linear_act_backward(grad_output, x, weight, bias, name, param)
    assert_close(x.grad, dx, GRAD_TOL[dtype], what="grad input")
    assert_close(weight.grad, dw, GRAD_TOL[dtype], what="grad weight")
    if bias is not None:
        assert_close(bias.grad, db, GRAD_TOL[dtype], what="grad bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,kwargs", ACTIVATION_CASES,
                         ids=[f"{n}{list(k.values()) or ''}" for n, k in ACTIVATION_CASES])
@pytest.mark.parametrize("shape,out_features", SHAPES, ids=[f"{s}->{n}" for s, n in SHAPES])
def test_forward_and_gradients(shape, out_features, name, kwargs, dtype, device, poison):
    _check(*_inputs(shape, out_features, dtype, device), name, kwargs, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,kwargs", ACTIVATION_CASES,
                         ids=[f"{n}{list(k.values()) or ''}" for n, k in ACTIVATION_CASES])
def test_torch_path_forward_and_gradients(name, kwargs, dtype, device):
    # The CPU path (interpreter off) against the same oracle, on a ragged 3-D input.
    if device != "cpu":
        pytest.skip("the plain-torch path is the CPU path")
    with fusedact.backend.force("torch"):
        _check(*_inputs((3, 7, 33), 67, dtype, device), name, kwargs, dtype)


@pytest.mark.parametrize("dtype", DTYPES + [torch.float64], ids=str)
@pytest.mark.parametrize("name", ["gelu", "tanh"])
def test_no_bias(name, dtype, device, poison):
    x, weight, _ = _inputs((9, 70), 66, dtype, device, bias=False)
    _check(x, weight, None, name, {}, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["silu", "leaky_relu"])
def test_non_contiguous_input_and_weight(name, dtype, device, poison):
    # x is a transposed view and the weight a transposed buffer: both read through strides.
    x_t = torch.randn(21, 10, device=device).to(dtype)
    x = x_t.t().requires_grad_()                          # [10, 21], strides (1, 10)
    w_t = (torch.randn(21, 15, device=device) / 21 ** 0.5).to(dtype)
    weight = w_t.t().requires_grad_()                     # [15, 21], strides (1, 15)
    bias = torch.randn(15, device=device).to(dtype).requires_grad_()
    assert not x.is_contiguous() and not weight.is_contiguous()
    _check(x, weight, bias, name, {}, dtype)


def test_sliced_batch_of_3d_input(device, poison):
    base = torch.randn(4, 6, 40, device=device)
    x = base[:, ::2, 3:36].requires_grad_()              # non-contiguous in two dims
    weight = (torch.randn(9, 33, device=device) / 33 ** 0.5).requires_grad_()
    _check(x, weight, None, "gelu_tanh", {}, torch.float32)


@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_empty_batch(name, device):
    x = torch.randn(0, 8, device=device, requires_grad=True)
    weight = torch.randn(5, 8, device=device, requires_grad=True)
    bias = torch.randn(5, device=device, requires_grad=True)
    y = fusedact.linear_act(x, weight, bias, name)
    assert y.shape == (0, 5)
    y.sum().backward()
    assert x.grad.shape == (0, 8)
    assert torch.equal(weight.grad, torch.zeros_like(weight))
    assert torch.equal(bias.grad, torch.zeros_like(bias))


def test_zero_in_features_gives_act_of_bias(device):
    x = torch.randn(3, 0, device=device, requires_grad=True)
    weight = torch.randn(4, 0, device=device, requires_grad=True)
    bias = torch.randn(4, device=device, requires_grad=True)
    y = fusedact.linear_act(x, weight, bias, "sigmoid")
    torch.testing.assert_close(y, torch.sigmoid(bias).expand(3, 4))
    y.sum().backward()
    s = torch.sigmoid(bias)
    torch.testing.assert_close(bias.grad, 3 * s * (1 - s))


def test_nan_and_inf_propagate(device):
    x = torch.randn(4, 6, device=device)
    x[1, 2] = float("nan")
    x[2, 0] = float("inf")
    weight = torch.randn(3, 6, device=device)
    for name in ["relu", "gelu", "tanh"]:
        y = fusedact.linear_act(x, weight, None, name)
        expected = reference.linear_act(x, weight, None, name)
        assert torch.equal(torch.isnan(y), torch.isnan(expected)), name
        assert torch.isnan(y[1]).all()
        torch.testing.assert_close(y[[0, 3]].double(), expected[[0, 3]], rtol=1e-4, atol=1e-5)


def test_deterministic(device):
    x = torch.randn(70, 90, device=device, requires_grad=True)
    weight = torch.randn(80, 90, device=device, requires_grad=True)
    bias = torch.randn(80, device=device, requires_grad=True)
    results = []
    for _ in range(2):
        for t in (x, weight, bias):
            t.grad = None
        y = fusedact.linear_act(x, weight, bias, "silu")
        y.backward(torch.ones_like(y))
        results.append([y.detach().clone(), x.grad.clone(), weight.grad.clone(), bias.grad.clone()])
    for first, second in zip(*results):
        assert torch.equal(first, second)


@pytest.mark.parametrize("layout", ["strided", "expanded"])
def test_strided_and_expanded_bias(layout, device, poison):
    # The kernel reads bias[n] at offset n: a non-contiguous bias must be made contiguous.
    x = torch.randn(6, 9, device=device)
    weight = torch.randn(5, 9, device=device) / 3
    bias = (torch.randn(5, 3, device=device)[:, 1] if layout == "strided"
            else torch.randn(1, device=device).expand(5))
    assert not bias.is_contiguous()
    y = fusedact.linear_act(x, weight, bias, "silu")
    assert_close(y, reference.linear_act(x, weight, bias, "silu"), FORWARD_TOL[torch.float32],
                 what="y")
