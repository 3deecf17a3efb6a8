"""The float64 oracle: plain-torch forward and backward of every fusedact op.

Independent of the Triton kernels (it never imports them). Three users:
- tests compare every kernel against these functions in float64;
- the CPU path (interpreter off) runs ``activation`` / ``activation_grad`` in fp32;
- benchmarks use them as the eager baseline.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def activation(z: torch.Tensor, name: str, param: float = 0.0) -> torch.Tensor:
    """act(z) with torch.nn.functional, in z's dtype."""
    if name == "identity":
        return z
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "relu":
        return F.relu(z)
    if name == "leaky_relu":
        return F.leaky_relu(z, param)
    if name == "elu":
        return F.elu(z, param)
    if name == "gelu":
        return F.gelu(z)
    if name == "gelu_tanh":
        return F.gelu(z, approximate="tanh")
    if name == "silu":
        return F.silu(z)
    raise ValueError(f"unknown activation {name!r}")


def activation_grad(saved: torch.Tensor, name: str, param: float,
                    from_output: bool) -> torch.Tensor:
    """dy/dz written out, from y (``from_output``) or from z; in saved's dtype.

    Tested against autograd of ``activation``; the CPU path's backward uses it.
    """
    one = torch.ones_like(saved)
    if from_output:
        y = saved
        if name == "sigmoid":
            return y * (1 - y)
        if name == "tanh":
            return 1 - y * y
        if name == "relu":
            return torch.where(y <= 0, 0 * one, one)
        if name == "leaky_relu":
            return torch.where(y > 0, one, param * one)
        if name == "elu":
            return torch.where(y <= 0, y + param, one)
        if name == "identity":
            return one
        raise ValueError(f"activation {name!r} has no derivative written from its output")
    z = saved
    if name == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - torch.tanh(z) ** 2
    if name == "relu":
        return torch.where(z <= 0, 0 * one, one)
    if name == "leaky_relu":
        return torch.where(z > 0, one, param * one)
    if name == "elu":
        return torch.where(z <= 0, param * torch.exp(z), one)
    if name == "gelu":
        cdf = 0.5 * (1 + torch.erf(z * 0.7071067811865476))
        return cdf + z * torch.exp(-0.5 * z * z) * 0.3989422804014327
    if name == "gelu_tanh":
        c = 0.7978845608028654
        t = torch.tanh(c * (z + 0.044715 * z ** 3))
        return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * c * (1 + 3 * 0.044715 * z * z)
    if name == "silu":
        s = torch.sigmoid(z)
        return s * (1 + z * (1 - s))
    if name == "identity":
        return one
    raise ValueError(f"unknown activation {name!r}")


def linear_act(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
               name: str, param: float = 0.0) -> torch.Tensor:
    """float64 act(x @ weight^T + bias) for x [..., K], weight [N, K], bias [N]; float64 out."""
    z = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    return activation(z, name, param)


def linear_act_backward(grad_output: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                        bias: Optional[torch.Tensor], name: str, param: float = 0.0):
    """float64 (dx, dweight, dbias) of ``linear_act`` for the given output gradient.

    dbias is None when bias is None. Computed by autograd in float64.
    """
    x64 = x.detach().double().requires_grad_()
    w64 = weight.detach().double().requires_grad_()
    b64 = None if bias is None else bias.detach().double().requires_grad_()
    y = linear_act(x64, w64, b64, name, param)
    inputs = [x64, w64] + ([b64] if b64 is not None else [])
    grads = torch.autograd.grad(y, inputs, grad_output.double())
    return grads[0], grads[1], (grads[2] if b64 is not None else None)
