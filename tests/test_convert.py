"""fusedact.fuse / fusedact.collapse: model surgery keeps outputs, gradients and state."""
import pytest
import torch
from torch import nn

import fusedact
from fusedact import FusedLinear

# (activation module, fusedact name, its kwargs): every supported module, parameters that
# differ from the defaults so a dropped slope/alpha/approximate shows.
SUPPORTED = [
    (lambda: nn.ReLU(inplace=True), "relu", {}),
    (lambda: nn.LeakyReLU(0.2), "leaky_relu", {"negative_slope": 0.2}),
    (lambda: nn.ELU(alpha=0.5), "elu", {"alpha": 0.5}),
    (nn.Sigmoid, "sigmoid", {}),
    (nn.Tanh, "tanh", {}),
    (nn.GELU, "gelu", {}),
    (lambda: nn.GELU(approximate="tanh"), "gelu_tanh", {}),
    (nn.SiLU, "silu", {}),
    (nn.Identity, "identity", {}),
]


def _nested(act, device, dtype=torch.float32):
    """Sequentials at three depths, inside a plain module, with a head that stays unfused."""
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 8), act(), nn.Sequential(nn.Linear(8, 8), act()))
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            return self.head(self.body(x))

    return nn.Sequential(nn.Linear(5, 6), act(), Block()).to(device=device, dtype=dtype)


def _grads(model, x):
    model.zero_grad()
    out = model(x)
    out.square().sum().backward()  # a non-uniform upstream gradient
    return out.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("act,name,kwargs", SUPPORTED, ids=[s[1] for s in SUPPORTED])
def test_fuse_same_outputs_and_gradients(act, name, kwargs, device):
    model = _nested(act, device)
    fused, records = fusedact.fuse(model)
    assert fused is not model
    layers = [m for m in fused.modules() if isinstance(m, FusedLinear)]
    assert len(layers) == 3 and all(m.activation == name for m in layers)
    assert all(m.activation_kwargs == kwargs for m in layers)
    assert not any(isinstance(m, type(act())) and name != "identity" for m in fused.modules())
    assert [r.path for r in records if r.fused] == ["0", "2.body.0", "2.body.2.0"]
    skipped = [r for r in records if not r.fused]
    assert [r.path for r in skipped] == ["2.head"]
    assert "not inside an nn.Sequential" in skipped[0].reason
    # original untouched (inplace=False deep-copies)
    assert not any(isinstance(m, FusedLinear) for m in model.modules())
    assert fused.state_dict().keys() == model.state_dict().keys()
    x = torch.randn(4, 5, device=device)
    expected, expected_grads = _grads(model, x)
    actual, actual_grads = _grads(fused, x)
    # fp32 on both sides; the fused path accumulates in another order: ~1e-6 relative.
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(actual_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_fuse_keeps_dtype_device_mode_and_shares_parameters_inplace():
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2), nn.Sigmoid())
    model = model.to(torch.float64).eval()
    model[2].weight.requires_grad_(False)
    params = list(model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    same, records = fusedact.fuse(model, inplace=True)
    assert same is model and all(r.fused for r in records)
    assert isinstance(model[0], FusedLinear) and isinstance(model[1], nn.Identity)
    assert list(model.parameters()) == params  # the very same Parameter objects
    assert model[0].weight.dtype == torch.float64 and not model[0].training
    assert not model[1].training and not model[2].weight.requires_grad
    # the optimizer built before the conversion still updates the model
    before = model[0].weight.detach().clone()
    model(torch.randn(3, 4, dtype=torch.float64)).sum().backward()
    optimizer.step()
    assert not torch.equal(model[0].weight, before)


def test_fuse_leaves_unsupported_hooked_and_parametrized_modules_alone():
    model = nn.Sequential(
        nn.Linear(3, 4), nn.Softplus(),                 # unsupported activation
        nn.Linear(4, 4), nn.Dropout(0.0),               # not an activation
        nn.Linear(4, 4), nn.ReLU(),                     # hook on the Linear
        nn.Linear(4, 4), nn.Tanh(),                     # hook on the activation
        nn.Linear(4, 4), nn.SiLU(),                     # parametrized weight
        nn.Linear(4, 4), nn.GELU(),                     # fused
    )
    calls = []
    model[4].register_forward_hook(lambda *a: calls.append("linear"))
    model[7].register_forward_pre_hook(lambda *a: calls.append("tanh"))

    class Scale(nn.Module):
        def forward(self, w):
            return 2 * w

    nn.utils.parametrize.register_parametrization(model[8], "weight", Scale())
    fused, records = fusedact.fuse(model)
    reasons = {r.path: r.reason for r in records}
    assert "Softplus is not a supported activation" in reasons["0"]
    assert "Dropout is not a supported activation" in reasons["2"]
    assert "forward hooks" in reasons["4"] and "forward pre hooks" in reasons["6"]
    assert "parametrizations" in reasons["8"]
    assert reasons["10"] is None and isinstance(fused[10], FusedLinear)
    assert sum(isinstance(m, FusedLinear) for m in fused.modules()) == 1
    x = torch.randn(2, 3)
    torch.testing.assert_close(fused(x), model(x))
    assert calls == ["linear", "tanh", "linear", "tanh"]  # the copy kept its hooks too
    assert "skipped  0: Linear + Softplus" in str(records[0])


def test_fuse_rejects_a_non_module():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        fusedact.fuse(lambda x: x)


def test_collapse_is_exact_in_float64():
    torch.manual_seed(1)
    stack = nn.Sequential(nn.Linear(7, 5), nn.Identity(), nn.Linear(5, 9, bias=False),
                          FusedLinear(9, 4), nn.Linear(4, 3)).double()
    single = fusedact.collapse(stack)
    assert isinstance(single, nn.Linear) and single.weight.dtype == torch.float64
    assert (single.in_features, single.out_features) == (7, 3)
    x = torch.randn(11, 7, dtype=torch.float64)
    # One product of four matrices vs four products: float64 rounding, ~1e-15 relative.
    torch.testing.assert_close(single(x), stack(x), rtol=1e-12, atol=1e-12)
    w = [m.weight for m in (stack[0], stack[2], stack[3], stack[4])]
    torch.testing.assert_close(single.weight, w[3] @ w[2] @ w[1] @ w[0], rtol=1e-12, atol=1e-12)
    expected_bias = w[3] @ w[2] @ w[1] @ stack[0].bias + w[3] @ stack[3].bias + stack[4].bias
    torch.testing.assert_close(single.bias, expected_bias, rtol=1e-12, atol=1e-12)


def test_collapse_without_bias_and_in_float32():
    layers = [nn.Linear(3, 6, bias=False), nn.Linear(6, 2, bias=False)]
    single = fusedact.collapse(layers)
    assert single.bias is None and single.weight.dtype == torch.float32
    x = torch.randn(5, 3)
    torch.testing.assert_close(single(x), layers[1](layers[0](x)), rtol=1e-5, atol=1e-6)


def test_collapse_errors():
    with pytest.raises(ValueError, match="activation 'relu'"):
        fusedact.collapse([nn.Linear(2, 2), FusedLinear(2, 2, activation="relu")])
    with pytest.raises(TypeError, match=r"layers\[1\] must be nn.Linear"):
        fusedact.collapse([nn.Linear(2, 2), nn.ReLU()])
    with pytest.raises(ValueError, match=r"layers\[1\] takes 3 features"):
        fusedact.collapse([nn.Linear(2, 2), nn.Linear(3, 2)])
    with pytest.raises(ValueError, match="at least one linear layer"):
        fusedact.collapse([nn.Identity()])
