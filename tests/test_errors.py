"""Bad input gets a clear Python error before any kernel runs."""
import pytest
import torch

import fusedact


def _args(**overrides):
    args = {"input": torch.randn(4, 5), "weight": torch.randn(3, 5), "bias": torch.randn(3)}
    args.update(overrides)
    return args


@pytest.mark.parametrize("overrides,error,match", [
    ({"input": [[1.0] * 5]}, TypeError, "input must be a torch.Tensor, got list"),
    ({"weight": None}, TypeError, "weight must be a torch.Tensor, got NoneType"),
    ({"input": torch.ones(4, 5, dtype=torch.int64)}, TypeError, "input must be a floating tensor.*torch.int64"),
    ({"weight": torch.ones(3, 5, dtype=torch.bool)}, TypeError, "weight must be a floating tensor.*torch.bool"),
    ({"bias": torch.ones(3, dtype=torch.int32)}, TypeError, "bias must be a floating tensor"),
    ({"weight": torch.randn(3, 5, dtype=torch.float64)}, TypeError, "share one dtype.*float32.*float64"),
    ({"bias": torch.randn(3, dtype=torch.float16)}, TypeError, "share one dtype"),
    ({"weight": torch.randn(3, 6)}, ValueError, r"input shape \(4, 5\), weight shape \(3, 6\)"),
    ({"weight": torch.randn(15)}, ValueError, r"weight must be 2-D.*\(15,\)"),
    ({"input": torch.tensor(1.0)}, ValueError, "input's last dimension"),
    ({"bias": torch.randn(4)}, ValueError, r"bias shape \(4,\), weight shape \(3, 5\)"),
    ({"bias": torch.randn(3, 1)}, ValueError, "bias must be 1-D"),
    ({"weight": torch.randn(3, 5, device="meta")}, ValueError, "one device.*meta"),
])
def test_bad_tensors(overrides, error, match):
    with pytest.raises(error, match=match):
        fusedact.linear_act(**_args(**overrides), activation="relu")


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "Relu"}, "unknown activation 'Relu'; expected one of: identity"),
    ({"activation": "leaky_relu", "negative_slope": float("inf")}, "negative_slope must be a finite"),
    ({"activation": "elu", "alpha": float("nan")}, "alpha must be a finite"),
    ({"activation": "gelu", "alpha": 1.0}, "takes no parameter"),
])
def test_bad_activation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fusedact.linear_act(**_args(), **kwargs)


def test_module_validates_at_construction():
    with pytest.raises(ValueError, match="unknown activation"):
        fusedact.FusedLinear(3, 4, activation="softplus")
    with pytest.raises(ValueError, match=r"input shape \(2, 5\), weight shape \(4, 3\)"):
        fusedact.FusedLinear(3, 4)(torch.randn(2, 5))


def test_double_backward_is_a_clear_error():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    y = fusedact.linear_act(x, w, None, "tanh")
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="(?i)autograd|differentiable|grad"):
        gx.sum().backward()
