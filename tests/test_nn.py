"""FusedLinear as a drop-in for nn.Linear + activation, and what it saves for backward."""
import copy
import io

import pytest
import torch
from torch import nn

import fusedact
from fusedact import FusedLinear

TORCH_ACTIVATIONS = {
    "identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "silu": nn.SiLU,
}


def test_same_init_and_state_dict_as_nn_linear():
    torch.manual_seed(123)
    linear = nn.Linear(17, 9)
    torch.manual_seed(123)
    fused = FusedLinear(17, 9, activation="relu")
    assert fused.state_dict().keys() == linear.state_dict().keys()
    for key, value in linear.state_dict().items():
        assert torch.equal(fused.state_dict()[key], value)
    other = FusedLinear(17, 9, activation="relu")
    other.load_state_dict(linear.state_dict())
    assert torch.equal(other.weight, linear.weight)
    assert FusedLinear(4, 3, bias=False).bias is None


def test_factory_arguments():
    layer = FusedLinear(5, 6, activation="gelu", dtype=torch.float16, device="meta")
    assert layer.weight.dtype == torch.float16 and layer.weight.device.type == "meta"
    assert layer.weight.shape == (6, 5) and layer.bias.shape == (6,)


def test_extra_repr_names_the_activation():
    text = repr(FusedLinear(3, 4, activation="leaky_relu", negative_slope=0.1))
    assert "activation=leaky_relu, negative_slope=0.1" in text
    assert "in_features=3, out_features=4, bias=True" in text
    assert "activation=elu, alpha=1.0" in repr(FusedLinear(3, 4, activation="elu"))


@pytest.mark.parametrize("name", fusedact.ACTIVATIONS)
def test_from_linear_matches_linear_then_activation(name, device):
    linear = nn.Linear(11, 7, device=device)
    act = TORCH_ACTIVATIONS[name]()
    fused = FusedLinear.from_linear(linear, activation=name)
    assert fused.weight is linear.weight and fused.bias is linear.bias
    x = torch.randn(2, 5, 11, device=device)
    torch.testing.assert_close(fused(x), act(linear(x)), rtol=1e-5, atol=1e-5)


def test_from_linear_keeps_the_slope_and_mode():
    linear = nn.Linear(4, 4).eval()
    fused = FusedLinear.from_linear(linear, "leaky_relu", negative_slope=0.2)
    assert fused.activation_kwargs == {"negative_slope": 0.2} and not fused.training
    with pytest.raises(TypeError, match="must be an nn.Linear"):
        FusedLinear.from_linear(nn.Conv1d(1, 1, 1))


def test_deepcopy_and_pickle_round_trip():
    layer = FusedLinear(6, 5, activation="elu", alpha=0.5)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    x = torch.randn(3, 6)
    for clone in (copy.deepcopy(layer), loaded):
        torch.testing.assert_close(clone(x), layer(x))
        assert clone.activation_kwargs == {"alpha": 0.5}


# ----------------------------------------------------------------------------- memory

def _saved_activation_storages(model, x):
    """Distinct non-parameter storages that autograd keeps for backward, and their bytes."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params and storage.nbytes() > 0:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum().backward()
    return len(storages), sum(storages.values())


def _stacks(name, width=32, depth=4):
    torch.manual_seed(0)
    eager = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), TORCH_ACTIVATIONS[name]())])
    fused = nn.Sequential(*[FusedLinear.from_linear(eager[2 * i], name) for i in range(depth)])
    return eager, fused


@pytest.mark.parametrize("name", fusedact.ACTIVATIONS)
def test_saved_for_backward_never_exceeds_eager(name, device):
    eager, fused = _stacks(name)
    eager, fused = eager.to(device), fused.to(device)
    x = torch.randn(16, 32, device=device)
    eager_count, eager_bytes = _saved_activation_storages(eager, x)
    fused_count, fused_bytes = _saved_activation_storages(fused, x)
    assert fused_bytes <= eager_bytes, (name, fused_count, eager_count)
    depth = 4
    if name in ("leaky_relu", "elu"):
        # eager keeps z and y per layer; fused keeps y only: the input plus one per layer.
        assert eager_count == 2 * depth and fused_count == depth + 1
    elif name in ("relu", "sigmoid", "tanh"):
        assert fused_count == eager_count == depth + 1
    elif name in ("gelu", "gelu_tanh", "silu"):
        # Both keep z (for act') and y (the next layer's input): two per layer.
        assert fused_count == eager_count == 2 * depth
    else:  # identity keeps only each layer's input, like nn.Linear
        assert fused_count == eager_count == depth


def test_no_grad_saves_nothing_and_writes_no_preactivation(monkeypatch):
    from fusedact.kernels import linear_act as linear_act_kernels

    flags = []
    original = linear_act_kernels.linear_act_forward
    monkeypatch.setattr(linear_act_kernels, "linear_act_forward",
                        lambda *a: flags.append(a[-1]) or original(*a))
    layer = FusedLinear(8, 8, activation="gelu")
    with torch.no_grad():
        layer(torch.randn(4, 8))
    layer(torch.randn(4, 8))
    if fusedact.backend.active(torch.empty(1)) == "torch":
        pytest.skip("the store_preact flag is a kernel-path detail")
    assert flags == [False, True]
