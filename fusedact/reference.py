"""The float64 oracle: plain-torch forward and backward of every fusedact op.

Independent of the Triton kernels (it never imports them). Users: the tests compare every
kernel and the CPU path (``fusedact.torch_path``, eager's own aten kernels) against these
functions in float64, and the benchmarks' eager providers use ``activation``.
"""
from __future__ import annotations

import math
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


# ===================================================================================
# Temperature softmax, log-softmax and the distillation loss (issue 3)
# ===================================================================================
# In the dtype of the inputs: the tests pass float64.

def softmax(x: torch.Tensor, temperature: float = 1.0, dim: int = -1,
            log: bool = False) -> torch.Tensor:
    """softmax(x / T) (``log``: log_softmax) along ``dim``, with torch's functions."""
    z = x / temperature
    return torch.log_softmax(z, dim) if log else torch.softmax(z, dim)


def softmax_backward(y: torch.Tensor, grad_output: torch.Tensor, temperature: float = 1.0,
                     dim: int = -1, log: bool = False) -> torch.Tensor:
    """dx written out from the output y: softmax ``y·(dy - Σ dy·y)/T``, log-softmax
    ``(dy - exp(y)·Σ dy)/T``. Tested against autograd of ``softmax``."""
    if log:
        return (grad_output - torch.exp(y) * grad_output.sum(dim, keepdim=True)) / temperature
    return y * (grad_output - (grad_output * y).sum(dim, keepdim=True)) / temperature


def kd_loss_parts(student: torch.Tensor, teacher: torch.Tensor, temperature: float,
                  labels: Optional[torch.Tensor] = None, ignore_index: int = -100):
    """Per row of [M, V] logits: (KL(p_t ‖ p_s) at temperature T, CE(student, labels) at
    T = 1 (zeros without labels), keep mask). Masked (-inf) teacher classes (p_t = 0) add
    exactly 0; a NaN anywhere in the teacher's row makes the row NaN, as in torch's kl_div."""
    log_p_s = torch.log_softmax(student / temperature, -1)
    log_p_t = torch.log_softmax(teacher / temperature, -1)
    p_t = log_p_t.exp()
    kl = torch.where(p_t == 0, torch.zeros_like(p_t), p_t * (log_p_t - log_p_s)).sum(-1)
    if labels is None:
        keep = torch.ones(student.shape[0], dtype=torch.bool, device=student.device)
        return kl, torch.zeros_like(kl), keep
    keep = labels != ignore_index
    safe = torch.where(keep, labels, torch.zeros_like(labels)).long()
    ce = torch.logsumexp(student, -1) - student.gather(-1, safe[:, None])[:, 0]
    return kl, torch.where(keep, ce, torch.zeros_like(ce)), keep


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0,
            reduction: str = "batchmean", ignore_index: int = -100,
            labels: Optional[torch.Tensor] = None, hard_weight: float = 0.0) -> torch.Tensor:
    """The definition fusedact.kd_loss implements, on logits [..., V]:

    rows r = all leading positions, kept unless labels[r] == ignore_index;
    loss_r = (1 - α)·T²·KL_r + α·CE_r with α = hard_weight;
    "none": loss_r [...] (0 on ignored rows); "sum": Σ; "batchmean": Σ / rows kept;
    "mean": (1 - α)·T²·Σ KL / (rows kept · V) + α·Σ CE / rows kept (each term reduced as
    torch reduces it: kl_div per element, cross_entropy per kept row).
    """
    V = student.shape[-1]
    rows = math.prod(student.shape[:-1])  # not reshape(-1, V): V may be 0
    s = student.reshape(rows, V)
    t = teacher.reshape(rows, V)
    flat_labels = None if labels is None else labels.reshape(-1)
    kl, ce, keep = kd_loss_parts(s, t, temperature, flat_labels, ignore_index)
    soft = torch.where(keep, (1 - hard_weight) * temperature ** 2 * kl, torch.zeros_like(kl))
    hard = hard_weight * ce
    if reduction == "none":
        return (soft + hard).reshape(student.shape[:-1])
    if reduction == "sum":
        return (soft + hard).sum()
    kept = keep.sum()
    if reduction == "batchmean":
        return (soft + hard).sum() / kept
    if reduction == "mean":
        return soft.sum() / (kept * V) + hard.sum() / kept
    raise ValueError(f"unknown reduction {reduction!r}")

