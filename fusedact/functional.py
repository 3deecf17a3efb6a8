"""The functional API: validate arguments, flatten to 2-D, call the custom ops.

Every check happens here, before any kernel runs, so bad input gets a clear Python error.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fusedact import amp, ops
from fusedact.activations import resolve

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_tensor(name: str, value) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16, bfloat16, float32 or "
                        f"float64), got {value.dtype}")


def linear_act(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
               activation: str = "identity", *, negative_slope: Optional[float] = None,
               alpha: Optional[float] = None) -> Tensor:
    """``act(input @ weight^T + bias)`` in one fused kernel, forward and backward.

    input [..., in_features] (1-D too, as F.linear takes it), weight [out_features,
    in_features], bias [out_features] or None; all of one dtype (float16, bfloat16,
    float32, float64) and one device. Accumulates in fp32 (fp64 for float64); returns
    [..., out_features] in the input's dtype. ``activation`` is one of
    ``fusedact.ACTIVATIONS``; ``negative_slope`` (leaky_relu, default 0.01) and ``alpha``
    (elu, default 1.0) as in torch.nn.functional.

    Saved for backward: input and weight, plus y for activations (other than identity) whose
    derivative is a function of the output (sigmoid, tanh, relu, leaky_relu with slope >= 0,
    elu with alpha >= 0), or the pre-activation z for gelu, gelu_tanh and silu.

    Raises TypeError for non-tensors, non-floating or mismatched dtypes; ValueError for
    shape mismatches, mismatched devices, an unknown activation or a bad parameter.
    """
    spec, param = resolve(activation, negative_slope, alpha)
    _check_tensor("input", input)
    _check_tensor("weight", weight)
    if bias is not None:
        _check_tensor("bias", bias)
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D [out_features, in_features], got shape "
                         f"{tuple(weight.shape)}")
    if input.dim() == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"input's last dimension must equal weight's in_features: input shape "
                         f"{tuple(input.shape)}, weight shape {tuple(weight.shape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise ValueError(f"bias must be 1-D of size out_features={weight.shape[0]}: bias shape "
                         f"{tuple(bias.shape)}, weight shape {tuple(weight.shape)}")
    tensors = {"input": input, "weight": weight, **({"bias": bias} if bias is not None else {})}
    dtypes = {name: t.dtype for name, t in tensors.items()}
    # Under torch.autocast the op casts them to one dtype first (fusedact.amp), as F.linear.
    cast = {name: amp.effective_dtype(t, "lower") for name, t in tensors.items()}
    if len(set(cast.values())) > 1:
        raise TypeError(f"input, weight and bias must share one dtype, got {dtypes}"
                        + (f" (under autocast: {cast})" if cast != dtypes else ""))
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        raise ValueError(f"input, weight and bias must be on one device, got {devices}")

    in_features, out_features = weight.shape[1], weight.shape[0]
    x2d = input.reshape(1, in_features) if input.dim() == 1 else (
        input if input.dim() == 2 else input.reshape(-1, in_features))
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors.values())
    store_preact = needs_grad and not spec.derivative_from_output(param)
    y, _ = ops.linear_act_fwd(x2d, weight, bias, spec.name, param, store_preact)
    return y.reshape(*input.shape[:-1], out_features)


# ===================================================================================
# Temperature softmax / log-softmax and the distillation loss (issue 3)
# ===================================================================================
import math  # noqa: E402
import numbers  # noqa: E402

from fusedact import reference  # noqa: E402

KD_REDUCTIONS = ("batchmean", "sum", "mean", "none")


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a positive finite number (a Python float), got "
                        f"{type(temperature).__name__}")
    value = float(temperature)
    # `0 < v < inf` rather than math.isfinite: it also traces under torch.compile, where a
    # float module attribute may arrive as a symbolic float (dynamic=True)
    if not 0.0 < value < math.inf:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return value


def _check_dim(dim, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not low <= dim <= high:
        raise ValueError(f"dim must be in [{low}, {high}] for a {ndim}-D input, got {dim}")
    return int(dim) % max(ndim, 1)


def _softmax(input: Tensor, temperature, dim, log: bool) -> Tensor:
    _check_tensor("input", input)
    value = _check_temperature(temperature)
    dim = _check_dim(dim, input.dim())
    if input.dim() == 0:
        return ops.softmax_fwd(input.reshape(1, 1), value, log).reshape(())
    moved = input.movedim(dim, -1)
    N = moved.shape[-1]
    M = moved.numel() // N if N else math.prod(moved.shape[:-1])
    # a strided 2-D view when the layout allows (dim=-1 always), else one copy
    y = ops.softmax_fwd(moved.reshape(M, N), value, log)
    return y.reshape(moved.shape).movedim(-1, dim)


def softmax(input: Tensor, temperature: float = 1.0, dim: int = -1) -> Tensor:
    """``softmax(input / temperature)`` along ``dim``, one kernel with online normalization.

    input: any shape (0-D, 1-D and empty too), float16 / bfloat16 / float32 / float64; the
    result has its shape and dtype, computed in fp32 (fp64 for float64). T > 1 flattens the
    distribution, T < 1 sharpens it, T = 1 is ``torch.softmax``. Masked (-inf) entries get
    probability 0; a slice of all -inf gives NaN, as torch does. For ``dim`` other than the
    last, the input is moved to the last axis (one copy unless its layout allows a view) and
    the result is a view with ``dim`` moved back (same values and shape as torch's, other
    strides).

    Saved for backward: the output only. dx = y·(dy - Σ dy·y) / T.
    Raises TypeError for a non-tensor, a non-floating dtype, or a non-number temperature;
    ValueError for a temperature that is not positive and finite, or a dim out of range.
    """
    return _softmax(input, temperature, dim, log=False)


def log_softmax(input: Tensor, temperature: float = 1.0, dim: int = -1) -> Tensor:
    """``log_softmax(input / temperature)`` along ``dim``; as ``softmax`` otherwise.

    Saved for backward: the output only. dx = (dy - exp(y)·Σ dy) / T.
    """
    return _softmax(input, temperature, dim, log=True)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0,
            reduction: str = "batchmean", ignore_index: int = -100,
            labels: Optional[Tensor] = None, hard_weight: float = 0.0) -> Tensor:
    """Knowledge-distillation loss ``T² · KL(softmax(t/T) ‖ softmax(s/T))`` in one fused pass.

    student_logits, teacher_logits: [..., V], same shape, dtype and device (float16,
    bfloat16, float32, float64); rows are all leading positions (e.g. tokens). Per row r:
    ``loss_r = (1 - hard_weight)·T²·KL_r + hard_weight·CE(student_r, labels_r)`` (CE at
    T = 1); rows whose label equals ``ignore_index`` count for nothing.
    ``reduction``: "batchmean" = Σ loss_r / rows kept (equal to torch's
    ``F.kl_div(..., reduction="batchmean") * T**2`` for 2-D logits; for 3-D logits torch
    divides by the first dimension only, fusedact by all rows), "sum", "mean" (the KL term
    per element as torch's kl_div "mean", the CE term per kept row as cross_entropy's), or
    "none" (loss per row, shape [...]). labels: integer [...] or None; ``hard_weight`` in
    [0, 1] needs labels. The result has the student's dtype.

    The gradient flows to the student only: ``T·(p_s - p_t)`` (plus the hard term), times the
    reduction's scale, is written by the forward kernel when the student needs a gradient,
    and the backward only multiplies it by the incoming gradient. Saved for backward: that
    one gradient tensor, in the student's dtype.

    Raises TypeError for non-tensors, non-floating logits, mismatched dtypes, non-integer
    labels, or a non-number temperature/hard_weight; ValueError for a temperature that is
    not positive and finite, mismatched shapes or devices, wrongly shaped or out-of-range
    labels (the range is checked for CPU labels outside torch.compile only: no device sync;
    elsewhere a kept row with an out-of-range label gets a NaN loss and gradient), an unknown
    reduction, or hard_weight outside [0, 1] or without labels.
    """
    _check_tensor("student_logits", student_logits)
    _check_tensor("teacher_logits", teacher_logits)
    value = _check_temperature(temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must have the same shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    # under torch.autocast both are cast to fp32 by the op (fusedact.amp), as torch's kl_div
    out_dtype = amp.effective_dtype(student_logits, "fp32")
    if out_dtype != amp.effective_dtype(teacher_logits, "fp32"):
        raise TypeError(f"student_logits and teacher_logits must share one dtype, got "
                        f"{student_logits.dtype} and {teacher_logits.dtype}")
    if student_logits.device != teacher_logits.device:
        raise ValueError(f"student_logits and teacher_logits must be on one device, got "
                         f"{student_logits.device} and {teacher_logits.device}")
    if student_logits.dim() == 0:
        raise ValueError("student_logits must have at least 1 dimension (the classes), got a "
                         "0-D tensor")
    if not isinstance(reduction, str) or reduction not in KD_REDUCTIONS:
        raise ValueError(f"reduction must be one of {KD_REDUCTIONS}, got {reduction!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    if isinstance(hard_weight, bool) or not isinstance(hard_weight, numbers.Real):
        raise TypeError(f"hard_weight must be a number in [0, 1], got "
                        f"{type(hard_weight).__name__}")
    hard_weight = float(hard_weight)
    if not 0.0 <= hard_weight <= 1.0:
        raise ValueError(f"hard_weight must be in [0, 1], got {hard_weight!r}")
    V = student_logits.shape[-1]
    lead = student_logits.shape[:-1]
    if labels is not None:
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a torch.Tensor or None, got {type(labels).__name__}")
        if labels.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"labels must be an int64 or int32 tensor, got {labels.dtype}")
        if labels.shape != lead:
            raise ValueError(f"labels must have the logits' leading shape {tuple(lead)}, got "
                             f"{tuple(labels.shape)}")
        if labels.device != student_logits.device:
            raise ValueError(f"labels must be on the logits' device {student_logits.device}, "
                             f"got {labels.device}")
        if labels.device.type == "cpu" and labels.numel() and not torch.compiler.is_compiling():
            bad = (labels != ignore_index) & ((labels < 0) | (labels >= V))
            if bool(bad.any()):
                raise ValueError(f"labels must be in [0, {V}) or equal ignore_index="
                                 f"{ignore_index}, got {labels[bad][0].item()}")
    elif hard_weight != 0.0:
        raise ValueError("hard_weight > 0 mixes in the hard-label cross entropy and needs "
                         "labels")

    if student_logits.numel() == 0:  # nothing to launch: torch's own empty semantics
        return reference.kd_loss(student_logits, teacher_logits.detach(), value, reduction,
                                 int(ignore_index), labels, hard_weight)
    M = math.prod(lead)
    student2d = student_logits.reshape(M, V)
    teacher2d = teacher_logits.detach().reshape(M, V)
    labels1d = None if labels is None else labels.reshape(M)
    write_grad = torch.is_grad_enabled() and student_logits.requires_grad
    row_loss, _ = ops.kd_loss_fwd(student2d, teacher2d, labels1d, value, hard_weight,
                                  int(ignore_index), reduction, write_grad)
    if reduction == "none":
        return row_loss.to(out_dtype).reshape(lead)
    return row_loss.sum().to(out_dtype)
