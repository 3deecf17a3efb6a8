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

from fusedact.kernels.dtypes import compute_dtype

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


def softmax_forward(x: Tensor, temperature: float, log: bool) -> Tensor:
    """softmax(x / T) (or log_softmax) over the last axis, as eager computes it: one scaled
    copy, then torch's own kernel, which accumulates half types in fp32."""
    scaled = x * (1.0 / temperature)
    return torch.log_softmax(scaled, -1) if log else torch.softmax(scaled, -1)


def softmax_backward(grad_output: Tensor, y: Tensor, temperature: float, log: bool) -> Tensor:
    """dx from the output y with eager's backward kernels, then the chain rule's 1/T."""
    backward = aten._log_softmax_backward_data if log else aten._softmax_backward_data
    return backward(grad_output, y, -1, y.dtype).mul_(1.0 / temperature)


def kd_loss_forward(student: Tensor, teacher: Tensor, labels: Optional[Tensor],
                    temperature: float, hard_weight: float, ignore_index: int,
                    scales: Tensor, write_grad: bool) -> tuple[Tensor, Optional[Tensor]]:
    """(row_loss [M] in fp32/fp64, grad [M, V] in the student's dtype or None) of the KD loss.

    ``scales`` = (c_kl, c_ce), the reduction's factors (kernels.kd_loss.reduction_scales).
    Each softmax is computed once and reused by the loss and the gradient, and the gradient
    is built in place in the student's log-softmax buffer.
    """
    compute = compute_dtype(student.dtype)
    inv_t = 1.0 / temperature
    log_p_s = torch.log_softmax(student.to(compute) * inv_t, -1)
    log_p_t = torch.log_softmax(teacher.to(compute) * inv_t, -1)
    p_t = log_p_t.exp()
    # Masked (-inf) teacher classes have p_t = 0 and contribute exactly 0, not 0·inf; a NaN
    # in the teacher stays NaN (p_t > 0 would drop it silently), as in the kernels.
    kl = torch.where(p_t == 0, 0.0, p_t * (log_p_t - log_p_s)).sum(-1)
    row_loss = ((1.0 - hard_weight) * temperature ** 2) * scales[0] * kl
    keep = None
    if labels is not None:
        keep = labels != ignore_index
        safe = torch.where(keep, labels, 0).long()
        if hard_weight != 0.0:
            student_c = student.to(compute)
            ce = torch.logsumexp(student_c, -1) - student_c.gather(-1, safe[:, None])[:, 0]
            row_loss = row_loss + (hard_weight * scales[1]) * ce
        # every row ignored: 0 · (1/0) = NaN, as torch's reductions give
        row_loss = torch.where(keep, row_loss, 0.0 * scales[1])
    if not write_grad:
        return row_loss, None
    grad = log_p_s.exp_().sub_(p_t).mul_(((1.0 - hard_weight) * temperature) * scales[0])
    if labels is not None:
        if hard_weight != 0.0:
            hard = torch.softmax(student_c, -1)
            hard.scatter_add_(-1, safe[:, None], torch.full_like(hard[:, :1], -1.0))
            grad.add_(hard.mul_(hard_weight * scales[1]))
        grad.masked_fill_(~keep[:, None], 0.0)
    return row_loss, grad.to(student.dtype)
