"""The custom ops: torch.library.opcheck, gradcheck in float64, torch.compile."""
import pytest
import torch

import fusedact
from fusedact import ops


def _fwd_samples(device):
    x = torch.randn(5, 7, device=device, requires_grad=True)
    w = torch.randn(3, 7, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True)
    return [
        (x, w, b, "gelu", 0.0, True),
        (x, w, None, "relu", 0.0, False),
        (x, w, b, "leaky_relu", 0.1, False),
        (x.detach().t().contiguous().t(), w, b, "elu", 1.0, False),
    ]


@pytest.mark.parametrize("index", range(4))
def test_opcheck_linear_act_fwd(index, device):
    torch.library.opcheck(ops.linear_act_fwd, _fwd_samples(device)[index])


@pytest.mark.parametrize("activation,from_output,has_bias", [
    ("tanh", True, True), ("silu", False, False), ("identity", True, True)])
def test_opcheck_linear_act_bwd(activation, from_output, has_bias, device):
    x = torch.randn(6, 4, device=device)
    w = torch.randn(5, 4, device=device)
    saved = torch.empty(0, device=device) if activation == "identity" else torch.randn(6, 5, device=device)
    dy = torch.randn(6, 5, device=device)
    torch.library.opcheck(ops.linear_act_bwd, (dy, x, w, saved, activation, 0.0, from_output, has_bias))


@pytest.mark.parametrize("name,kwargs", [(n, {}) for n in fusedact.ACTIVATIONS]
                         + [("leaky_relu", {"negative_slope": -0.2}), ("elu", {"alpha": 0.3})])
def test_gradcheck_float64(name, kwargs, device):
    # Small shapes and fast_mode (random projections): each evaluation is an interpreted launch.
    x = torch.randn(2, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64, device=device, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: fusedact.linear_act(x, w, b, name, **kwargs), (x, w, b), fast_mode=True)


def _mlp(device):
    return torch.nn.Sequential(
        fusedact.FusedLinear(12, 24, activation="gelu", device=device),
        fusedact.FusedLinear(24, 24, activation="leaky_relu", negative_slope=0.1, device=device),
        fusedact.FusedLinear(24, 3, bias=False, device=device),
    )


@pytest.mark.parametrize("compiler", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(compiler, device):
    model = _mlp(device)
    compiled = torch.compile(model, fullgraph=True, backend=compiler, dynamic=True)
    for batch in (5, 9):  # a second batch size must not break the graph
        x = torch.randn(batch, 12, device=device)
        model.zero_grad()
        expected = model(x)
        expected.square().sum().backward()
        expected_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        actual = compiled(x)
        actual.square().sum().backward()
        torch.testing.assert_close(actual, expected)
        for p, g in zip(model.parameters(), expected_grads):
            torch.testing.assert_close(p.grad, g)
