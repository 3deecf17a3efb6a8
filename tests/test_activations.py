"""The activation pairs: the Triton helpers and the reference formulas against autograd."""
import math

import pytest
import torch
import triton
import triton.language as tl

import fusedact
from fusedact import reference
from fusedact.activations import resolve
from fusedact.kernels import activations as triton_activations

PARAMS = {"leaky_relu": [0.01, 0.3, -0.2, 0.0], "elu": [1.0, 0.4, -0.5, 0.0]}
CASES = [(name, p) for name in fusedact.ACTIVATIONS for p in PARAMS.get(name, [0.0])]


def _z(dtype=torch.float64):
    # Both sides of 0, exactly 0, and large magnitudes where exp overflows in fp32.
    z = torch.cat([torch.randn(200, dtype=dtype) * 3,
                   torch.tensor([0.0, -0.0, 1e-6, -1e-6, 30.0, -30.0, 90.0, -90.0], dtype=dtype)])
    return z


@pytest.mark.parametrize("name,param", CASES)
def test_reference_grad_matches_autograd(name, param):
    z = _z().requires_grad_()
    y = reference.activation(z, name, param)
    (expected,) = torch.autograd.grad(y.sum(), z)
    spec, _ = resolve(name)
    from_z = reference.activation_grad(z.detach(), name, param, from_output=False)
    torch.testing.assert_close(from_z, expected, rtol=1e-12, atol=1e-12)
    if spec.derivative_from_output(param):
        from_y = reference.activation_grad(y.detach(), name, param, from_output=True)
        torch.testing.assert_close(from_y, expected, rtol=1e-12, atol=1e-12)


@triton.jit
def _probe_kernel(Z, SAVED_Y, Y, GRAD_Z, GRAD_Y, n, param,
                  ACTIVATION: tl.constexpr, HAS_OUTPUT_FORM: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    mask = offsets < n
    z = tl.load(Z + offsets, mask=mask, other=0.0)
    tl.store(Y + offsets, triton_activations.apply_activation(z, ACTIVATION, param), mask=mask)
    tl.store(GRAD_Z + offsets, triton_activations.activation_grad(z, ACTIVATION, param, False), mask=mask)
    if HAS_OUTPUT_FORM:
        y = tl.load(SAVED_Y + offsets, mask=mask, other=0.0)
        tl.store(GRAD_Y + offsets, triton_activations.activation_grad(y, ACTIVATION, param, True),
                 mask=mask)


@pytest.mark.parametrize("name,param", CASES)
def test_triton_pair_matches_reference(name, param, device):
    spec, _ = resolve(name)
    from_output = spec.derivative_from_output(param)
    z = _z(torch.float32).to(device)
    y_ref = reference.activation(z.double(), name, param)
    out = [torch.full_like(z, float("nan")) for _ in range(3)]
    block = triton.next_power_of_2(z.numel())
    _probe_kernel[(1,)](z, y_ref.float(), out[0], out[1], out[2], z.numel(), param,
                        ACTIVATION=triton_activations.CODES[name], HAS_OUTPUT_FORM=from_output,
                        BLOCK=block)
    # fp32 math; tanh is 2*sigmoid(2z)-1, which loses relative (not absolute) accuracy
    # near 0, hence the absolute term.
    tol = dict(rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(out[0].double(), y_ref, **tol)
    grad_ref = reference.activation_grad(z.double(), name, param, from_output=False)
    torch.testing.assert_close(out[1].double(), grad_ref, **tol)
    if from_output:
        grad_from_y = reference.activation_grad(y_ref.float().double(), name, param, True)
        torch.testing.assert_close(out[2].double(), grad_from_y, **tol)


def test_names_match_torch_functional():
    # Every name is torch's (gelu_tanh is F.gelu(approximate="tanh")).
    for name in fusedact.ACTIVATIONS:
        base = name.replace("_tanh", "") if name == "gelu_tanh" else name
        assert name == "identity" or hasattr(torch.nn.functional, base), name
    assert set(triton_activations.CODES) == set(fusedact.ACTIVATIONS)


def test_resolve_defaults_follow_torch():
    assert resolve("leaky_relu")[1] == 0.01
    assert resolve("elu")[1] == 1.0
    assert resolve("leaky_relu", negative_slope=0.1)[1] == 0.1


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "swish"}, "expected one of: identity, sigmoid"),
    ({"activation": "relu", "negative_slope": 0.1}, "takes no parameter"),
    ({"activation": "elu", "negative_slope": 0.1}, "takes alpha"),
    ({"activation": "leaky_relu", "negative_slope": math.nan}, "finite real number"),
    ({"activation": "elu", "alpha": math.inf}, "finite real number"),
    ({"activation": "elu", "alpha": "1"}, "finite real number"),
    ({"activation": "elu", "alpha": True}, "finite real number"),
])
def test_resolve_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resolve(**kwargs)
    with pytest.raises(TypeError, match="activation must be a str"):
        resolve(3)
