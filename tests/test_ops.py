"""The custom ops: torch.library.opcheck, gradcheck in float64, torch.compile."""
import pytest
import torch

import fusedact
from fusedact import ops, reference


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


@pytest.mark.parametrize("activation,from_output,flags", [
    ("tanh", True, (True, True, True)), ("silu", False, (True, True, False)),
    ("identity", True, (True, True, True)), ("gelu", False, (False, True, True)),
    ("relu", True, (True, False, False))])
def test_opcheck_linear_act_bwd(activation, from_output, flags, device):
    x = torch.randn(6, 4, device=device)
    w = torch.randn(5, 4, device=device)
    saved = torch.empty(0, device=device) if activation == "identity" else torch.randn(6, 5, device=device)
    dy = torch.randn(6, 5, device=device)
    torch.library.opcheck(ops.linear_act_bwd, (dy, x, w, saved, activation, 0.0, from_output, *flags))


@pytest.mark.parametrize("frozen", ["input", "weight", "bias"])
def test_only_the_needed_gradients_are_computed(frozen, monkeypatch, device):
    # The first layer's input, or a frozen weight/bias, needs no gradient: no matmul for it.
    from fusedact.kernels import linear_act as linear_act_kernels

    launches = []
    original = linear_act_kernels.matmul_rowsum
    monkeypatch.setattr(linear_act_kernels, "matmul_rowsum",
                        lambda *a, **k: launches.append(k["rowsum"]) or original(*a, **k))
    x = torch.randn(6, 5, device=device, requires_grad=frozen != "input")
    w = torch.randn(4, 5, device=device, requires_grad=frozen != "weight")
    b = torch.randn(4, device=device, requires_grad=frozen != "bias")
    y = fusedact.linear_act(x, w, b, "gelu")
    grad_output = torch.randn_like(y)
    y.backward(grad_output)
    expected = reference.linear_act_backward(grad_output, x, w, b, "gelu")
    for tensor, name, want in zip((x, w, b), ("input", "weight", "bias"), expected):
        if name == frozen:
            assert tensor.grad is None, name
        else:
            torch.testing.assert_close(tensor.grad.double(), want, rtol=1e-4, atol=1e-5)
    if fusedact.backend.active(x) != "torch":
        assert len(launches) == (1 if frozen == "input" else 2)
        assert launches[-1] == (frozen != "bias")


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
