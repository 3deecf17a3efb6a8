"""nn.Module shells over ``fusedact.functional``; they hold parameters and nothing else."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from fusedact import functional
from fusedact.activations import resolve


class FusedLinear(nn.Module):
    """``act(x @ weight^T + bias)`` as one layer: a drop-in for ``nn.Linear`` + activation.

    ``weight`` [out_features, in_features] and ``bias`` [out_features] are initialised,
    named and stored exactly as ``nn.Linear``'s, so an ``nn.Linear`` state dict loads into
    it. ``negative_slope`` (leaky_relu) and ``alpha`` (elu) as in torch.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: str = "identity", *, negative_slope: Optional[float] = None,
                 alpha: Optional[float] = None, device=None, dtype=None) -> None:
        super().__init__()
        spec, param = resolve(activation, negative_slope, alpha)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = spec.name
        self._param_name = spec.param_name
        self._param = param
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty((out_features, in_features), **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation, drawn in the same order from the same generator."""
        nn.Linear.reset_parameters(self)

    @classmethod
    def from_linear(cls, linear: nn.Linear, activation: str = "identity", *,
                    negative_slope: Optional[float] = None,
                    alpha: Optional[float] = None) -> "FusedLinear":
        """A FusedLinear that shares ``linear``'s weight and bias Parameters (not copies, so
        an optimizer holding them keeps working), on its device, in its dtype and mode."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        layer = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                    activation=activation, negative_slope=negative_slope, alpha=alpha,
                    device="meta", dtype=linear.weight.dtype)
        layer.weight = linear.weight
        layer.bias = linear.bias
        layer.train(linear.training)
        return layer

    @property
    def activation_kwargs(self) -> dict:
        """The activation's parameter as a keyword, e.g. {"negative_slope": 0.1}, or {}."""
        return {} if self._param_name is None else {self._param_name: self._param}

    def forward(self, input: Tensor) -> Tensor:
        return functional.linear_act(input, self.weight, self.bias, self.activation,
                                     **self.activation_kwargs)

    def extra_repr(self) -> str:
        params = "".join(f", {k}={v}" for k, v in self.activation_kwargs.items())
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, activation={self.activation}{params}")


# ===================================================================================
# Temperature softmax and the distillation loss (issue 3)
# ===================================================================================

class TemperatureSoftmax(nn.Module):
    """``softmax(x / temperature)`` along ``dim`` (``log=True``: log_softmax); see
    ``fusedact.softmax``. Holds no parameters."""

    def __init__(self, temperature: float = 1.0, dim: int = -1, log: bool = False) -> None:
        super().__init__()
        functional._check_temperature(temperature)
        self.temperature = float(temperature)
        self.dim = dim
        self.log = bool(log)

    def forward(self, input: Tensor) -> Tensor:
        fn = functional.log_softmax if self.log else functional.softmax
        return fn(input, self.temperature, self.dim)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, dim={self.dim}, log={self.log}"


class KDLoss(nn.Module):
    """The distillation loss ``(1 - hard_weight)·T²·KL(p_t ‖ p_s) + hard_weight·CE`` as a
    criterion: ``KDLoss(4.0)(student_logits, teacher_logits, labels=None)``; see
    ``fusedact.kd_loss``."""

    def __init__(self, temperature: float = 1.0, reduction: str = "batchmean",
                 ignore_index: int = -100, hard_weight: float = 0.0) -> None:
        super().__init__()
        functional._check_temperature(temperature)
        if reduction not in functional.KD_REDUCTIONS:
            raise ValueError(f"reduction must be one of {functional.KD_REDUCTIONS}, got "
                             f"{reduction!r}")
        self.temperature = float(temperature)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.hard_weight = hard_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                labels: Optional[Tensor] = None) -> Tensor:
        return functional.kd_loss(student_logits, teacher_logits, self.temperature,
                                  self.reduction, self.ignore_index, labels, self.hard_weight)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}, hard_weight={self.hard_weight}")
