"""The plain-torch path of the ops: what runs on the CPU when the interpreter is off.

It does what eager torch does, with eager's own fused aten kernels, in the input's dtype, so
it runs at eager speed; it is leaner than eager because it keeps y instead of z where the
derivative allows (and applies those activations in place on the matmul's output).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

aten = torch.ops.aten

# Activations whose in-place form leaves the matmul's output buffer as y.
_IN_PLACE = {
    "sigmoid": lambda z, p: z.sigmoid_(),
    "tanh": lambda z, p: z.tanh_(),
    "relu": lambda z, p: z.relu_(),
    "leaky_relu": lambda z, p: F.leaky_relu_(z, p),
    "elu": lambda z, p: F.elu_(z, p),
    "identity": lambda z, p: z,
}
_OUT_OF_PLACE = {
    "gelu": lambda z: F.gelu(z),
    "gelu_tanh": lambda z: F.gelu(z, approximate="tanh"),
    "silu": F.silu,
}


def linear_act_forward(x: Tensor, weight: Tensor, bias: Optional[Tensor], activation: str,
                       param: float, store_preact: bool) -> tuple[Tensor, Optional[Tensor]]:
    """(y, z or None): act(x @ weight^T + bias) in x's dtype, x [M, K]."""
    z = F.linear(x, weight, bias)
    if activation in _OUT_OF_PLACE:
        return _OUT_OF_PLACE[activation](z), (z if store_preact else None)
    if store_preact:  # leaky_relu / elu with a negative parameter keep z
        return _IN_PLACE[activation](z.clone(), param), z
    return _IN_PLACE[activation](z, param), None


def act_grad(grad_output: Tensor, saved: Tensor, activation: str, param: float,
             from_output: bool) -> Tensor:
    """grad_output ⊙ act'(saved), with eager's backward kernels; saved is y or z."""
    if activation == "identity":
        return grad_output
    if activation == "relu":
        return aten.threshold_backward(grad_output, saved, 0)
    if activation == "leaky_relu":
        return aten.leaky_relu_backward(grad_output, saved, param, from_output)
    if activation == "elu":
        return aten.elu_backward(grad_output, param, 1, 1, from_output, saved)
    if activation in ("sigmoid", "tanh"):
        y = saved if from_output else getattr(torch, activation)(saved)
        return getattr(aten, f"{activation}_backward")(grad_output, y)
    if activation == "gelu":
        return aten.gelu_backward(grad_output, saved)
    if activation == "gelu_tanh":
        return aten.gelu_backward(grad_output, saved, approximate="tanh")
    if activation == "silu":
        return aten.silu_backward(grad_output, saved)
    raise ValueError(f"unknown activation {activation!r}")


def linear_backward(grad_preact: Tensor, x: Tensor, weight: Tensor, has_bias: bool):
    """(dx, dweight, dbias or None) from dZ, as eager's addmm backward computes them."""
    grad_input = grad_preact @ weight
    grad_weight = grad_preact.t() @ x
    grad_bias = grad_preact.sum(0) if has_bias else None
    return grad_input, grad_weight, grad_bias


def softmax_forward(x: Tensor, temperature: float, log: bool) -> Tensor:
    """softmax(x / T) (or log_softmax) over the last axis, as eager computes it: one scaled
    copy, then torch's own kernel, which accumulates half types in fp32."""
    scaled = x * (1.0 / temperature)
    return torch.log_softmax(scaled, -1) if log else torch.softmax(scaled, -1)


def softmax_backward(grad_output: Tensor, y: Tensor, temperature: float, log: bool) -> Tensor:
    """dx from the output y with eager's backward kernels, then the chain rule's 1/T."""
    backward = aten._log_softmax_backward_data if log else aten._softmax_backward_data
    return backward(grad_output, y, -1, y.dtype).mul_(1.0 / temperature)
