"""torch.library custom ops (``fusedact::``), their fake (meta) impls, and autograd.

Each op body picks its path with ``fusedact.backend.active``: the Triton launchers of
``fusedact.kernels`` (compiled on CUDA, interpreted on the CPU when TRITON_INTERPRET=1), or
``fusedact.torch_path`` (eager's own kernels) on the CPU. Ops take 2-D inputs; ``fusedact.functional`` validates and
flattens before calling them. Why ``custom_op`` and not ``triton_op``: see DESIGN.md (it
passes opcheck and torch.compile under the interpreter too).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from fusedact import backend, torch_path
from fusedact.activations import resolve
from fusedact.kernels import linear_act as linear_act_kernels
from fusedact.kernels.dtypes import compute_dtype


def _empty(like: Tensor) -> Tensor:
    return like.new_empty((0,))


# ------------------------------------------------------------------ linear + activation

@torch.library.custom_op("fusedact::linear_act_fwd", mutates_args=())
def linear_act_fwd(x: Tensor, weight: Tensor, bias: Optional[Tensor], activation: str,
                   param: float, store_preact: bool) -> tuple[Tensor, Tensor]:
    """(y, z): y = act(x @ weight^T + bias) [M, N] in x's dtype; z the pre-activation when
    ``store_preact`` else an empty tensor. x [M, K] (any strides), weight [N, K]."""
    M, N = x.shape[0], weight.shape[0]
    if M == 0 or N == 0:
        y = x.new_empty((M, N))
        return y, (x.new_empty((M, N)) if store_preact else _empty(x))
    if backend.active(x) == "torch":
        y, z = torch_path.linear_act_forward(x, weight, bias, activation, param, store_preact)
        return y, (z if store_preact else _empty(x))
    return linear_act_kernels.linear_act_forward(x, weight, bias, activation, param, store_preact)


@linear_act_fwd.register_fake
def _(x, weight, bias, activation, param, store_preact):
    M, N = x.shape[0], weight.shape[0]
    return x.new_empty((M, N)), (x.new_empty((M, N)) if store_preact else x.new_empty((0,)))


@torch.library.custom_op("fusedact::linear_act_bwd", mutates_args=())
def linear_act_bwd(grad_output: Tensor, x: Tensor, weight: Tensor, saved: Tensor,
                   activation: str, param: float, from_output: bool, input_grad: bool,
                   weight_grad: bool, bias_grad: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(dx [M, K], dweight [N, K], dbias [N]) of ``linear_act_fwd``; each one an empty
    tensor unless its flag asks for it (the first layer's input needs no dx; frozen weights
    need no dW), so no dx matmul runs when dx is not needed (db alone still runs the dW
    matmul, whose first column of programs sums it).

    ``saved`` is y when ``from_output`` else z, or empty for identity (derivative 1).
    dZ = grad_output ⊙ act'(saved); dx = dZ @ weight; dweight = dZ^T @ x; dbias = Σ_rows dZ.
    """
    M, K = x.shape
    N = weight.shape[0]
    if backend.active(x) == "torch" or min(M, N, K) == 0:
        # Zero-sized problems have nothing to launch; torch gives the right empty/zero shapes.
        grad_preact = torch_path.act_grad(grad_output, saved, activation, param, from_output)
        grad_input = grad_preact @ weight if input_grad else _empty(x)
        grad_weight = grad_preact.t() @ x if weight_grad else _empty(x)
        grad_bias = grad_preact.sum(0) if bias_grad else _empty(x)
        return grad_input, grad_weight, grad_bias
    if activation == "identity":
        grad_preact = grad_output
    else:
        grad_preact = linear_act_kernels.act_grad(grad_output, saved, activation, param,
                                                  from_output)
    grad_input, grad_weight, grad_bias = _empty(x), _empty(x), _empty(x)  # no aliased outputs
    if input_grad:
        grad_input, _ = linear_act_kernels.matmul_rowsum(grad_preact, weight, x.dtype,
                                                         rowsum=False)
    if weight_grad or bias_grad:
        # db rides along the dW matmul (its first column of programs sums the rows).
        grad_weight, grad_bias = linear_act_kernels.matmul_rowsum(
            grad_preact.T, x, weight.dtype, rowsum=bias_grad)
        grad_weight = grad_weight if weight_grad else _empty(x)
        grad_bias = grad_bias if bias_grad else _empty(x)
    return grad_input, grad_weight, grad_bias


@linear_act_bwd.register_fake
def _(grad_output, x, weight, saved, activation, param, from_output, input_grad, weight_grad,
      bias_grad):
    return (x.new_empty(x.shape if input_grad else (0,)),
            weight.new_empty(weight.shape if weight_grad else (0,)),
            weight.new_empty((weight.shape[0],) if bias_grad else (0,)))


def _linear_act_setup_context(ctx, inputs, output):
    x, weight, bias, activation, param, store_preact = inputs
    y, z = output
    spec, _ = resolve(activation)
    ctx.activation, ctx.param, ctx.has_bias = activation, param, bias is not None
    ctx.from_output = spec.derivative_from_output(param)
    if activation == "identity":
        saved = None                  # derivative 1: nothing activation-sized to keep
    elif ctx.from_output:
        saved = y                     # the next layer keeps y anyway as its input
    else:
        saved = z if store_preact else None
    ctx.missing_preact = saved is None and activation != "identity"
    ctx.save_for_backward(x, weight, saved)


def _linear_act_backward(ctx, grad_y, grad_z):
    if ctx.missing_preact:
        raise RuntimeError("fusedact::linear_act_fwd was called with store_preact=False, so "
                           f"the backward of {ctx.activation!r} has no pre-activation; call "
                           "fusedact.linear_act, which sets it when a gradient is needed")
    x, weight, saved = ctx.saved_tensors
    if saved is None:
        saved = _empty(x)
    needs_input, needs_weight, needs_bias = ctx.needs_input_grad[:3]
    needs_bias = needs_bias and ctx.has_bias
    grad_input, grad_weight, grad_bias = linear_act_bwd(
        grad_y, x, weight, saved, ctx.activation, ctx.param, ctx.from_output,
        needs_input, needs_weight, needs_bias)
    return (grad_input if needs_input else None,
            grad_weight if needs_weight else None,
            grad_bias if needs_bias else None,
            None, None, None)


torch.library.register_autograd("fusedact::linear_act_fwd", _linear_act_backward,
                                setup_context=_linear_act_setup_context)


# ===================================================================================
# Temperature softmax / log-softmax and the distillation loss (issue 3)
# ===================================================================================
from fusedact.kernels import kd_loss as kd_loss_kernels  # noqa: E402
from fusedact.kernels import softmax as softmax_kernels  # noqa: E402


@torch.library.custom_op("fusedact::softmax_fwd", mutates_args=())
def softmax_fwd(x: Tensor, temperature: float, log: bool) -> Tensor:
    """softmax(x / T) over the last axis of x [M, N] (any strides), or log_softmax when
    ``log``; [M, N] contiguous in x's dtype."""
    M, N = x.shape
    if M == 0 or N == 0:
        return x.new_empty((M, N))
    if backend.active(x) == "torch":
        return torch_path.softmax_forward(x, temperature, log)
    return softmax_kernels.softmax_forward(x, temperature, log)


@softmax_fwd.register_fake
def _(x, temperature, log):
    return x.new_empty(x.shape)


@torch.library.custom_op("fusedact::softmax_bwd", mutates_args=())
def softmax_bwd(grad_output: Tensor, y: Tensor, temperature: float, log: bool) -> Tensor:
    """dx of ``softmax_fwd`` from its output y and grad_output (both [M, N])."""
    M, N = y.shape
    if M == 0 or N == 0:
        return y.new_empty((M, N))
    if backend.active(y) == "torch":
        return torch_path.softmax_backward(grad_output, y, temperature, log)
    return softmax_kernels.softmax_backward(y, grad_output, temperature, log)


@softmax_bwd.register_fake
def _(grad_output, y, temperature, log):
    return y.new_empty(y.shape)


def _softmax_setup_context(ctx, inputs, output):
    _, temperature, log = inputs
    ctx.temperature, ctx.log = temperature, log
    ctx.save_for_backward(output)  # the backward reads y only, never x


def _softmax_backward(ctx, grad_y):
    (y,) = ctx.saved_tensors
    return softmax_bwd(grad_y, y, ctx.temperature, ctx.log), None, None


torch.library.register_autograd("fusedact::softmax_fwd", _softmax_backward,
                                setup_context=_softmax_setup_context)


@torch.library.custom_op("fusedact::kd_loss_fwd", mutates_args=())
def kd_loss_fwd(student: Tensor, teacher: Tensor, labels: Optional[Tensor], temperature: float,
                hard_weight: float, ignore_index: int, reduction: str,
                write_grad: bool) -> tuple[Tensor, Tensor]:
    """(row_loss [M] in fp32 (fp64 for fp64), grad [M, V] in the student's dtype or empty).

    row_loss holds each row's loss already scaled by the reduction (its sum is the reduced
    loss; for "none" it is the per-row loss); grad = d(row_loss)/d(student), written in the
    same pass when ``write_grad``. student, teacher [M, V] (any strides), labels [M] or None.
    """
    M, V = student.shape
    compute = compute_dtype(student.dtype)
    if M == 0 or V == 0:
        return (student.new_zeros((M,), dtype=compute),
                student.new_zeros((M, V)) if write_grad else _empty(student))
    if backend.active(student) == "torch":
        scales = kd_loss_kernels.reduction_scales(labels, M, V, reduction, ignore_index,
                                                  student.device, compute)
        row_loss, grad = torch_path.kd_loss_forward(student, teacher, labels, temperature,
                                                    hard_weight, ignore_index, scales,
                                                    write_grad)
        return row_loss, (grad if write_grad else _empty(student))
    return kd_loss_kernels.kd_loss_forward(student, teacher, labels, temperature, hard_weight,
                                           ignore_index, reduction, write_grad)


@kd_loss_fwd.register_fake
def _(student, teacher, labels, temperature, hard_weight, ignore_index, reduction, write_grad):
    M, V = student.shape
    return (student.new_empty((M,), dtype=compute_dtype(student.dtype)),
            student.new_empty((M, V)) if write_grad else student.new_empty((0,)))


@torch.library.custom_op("fusedact::kd_loss_bwd", mutates_args=())
def kd_loss_bwd(grad_rows: Tensor, grad: Tensor) -> Tensor:
    """d(loss)/d(student) = grad · grad_rows[:, None]: grad [M, V] from ``kd_loss_fwd``,
    grad_rows [M] the incoming gradient of its row losses."""
    M, V = grad.shape
    if M == 0 or V == 0:
        return grad.new_zeros((M, V))
    if backend.active(grad) == "torch":
        compute = compute_dtype(grad.dtype)  # as the kernel: the product in fp32
        return (grad.to(compute) * grad_rows.to(compute)[:, None]).to(grad.dtype)
    return kd_loss_kernels.kd_loss_backward(grad_rows.to(compute_dtype(grad.dtype)), grad)


@kd_loss_bwd.register_fake
def _(grad_rows, grad):
    return grad.new_empty(grad.shape)


def _kd_loss_setup_context(ctx, inputs, output):
    ctx.write_grad = inputs[-1]
    _, grad = output
    # the only [M, V] tensor kept for backward: the gradient itself, in the student's dtype
    ctx.save_for_backward(grad if ctx.write_grad else None)


def _kd_loss_backward(ctx, grad_rows, _grad_grad):
    if not ctx.write_grad:
        raise RuntimeError("fusedact::kd_loss_fwd was called with write_grad=False, so it has "
                           "no student gradient; call fusedact.kd_loss, which sets it when a "
                           "gradient is needed")
    (grad,) = ctx.saved_tensors
    grad_student = kd_loss_bwd(grad_rows, grad) if ctx.needs_input_grad[0] else None
    # the teacher gets no gradient (distillation trains the student only)
    return grad_student, None, None, None, None, None, None, None


torch.library.register_autograd("fusedact::kd_loss_fwd", _kd_loss_backward,
                                setup_context=_kd_loss_setup_context)


# ------------------------------------------------------------------ double backward

def _no_double_backward(name: str):
    def backward(ctx, *grads):
        raise RuntimeError(f"fusedact.{name} does not support double backward (a gradient of "
                           "its gradient, e.g. autograd.grad(..., create_graph=True) followed by "
                           "another backward); compute that term with plain torch ops")
    return backward


# The backward ops get an autograd formula that says so, instead of torch's generic
# "no autograd formula was registered" (which reads like a bug in fusedact).
torch.library.register_autograd(linear_act_bwd, _no_double_backward("linear_act"))
torch.library.register_autograd(softmax_bwd, _no_double_backward("softmax / log_softmax"))
torch.library.register_autograd(kd_loss_bwd, _no_double_backward("kd_loss"))
