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
                   activation: str, param: float, from_output: bool,
                   has_bias: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(dx [M, K], dweight [N, K], dbias [N] or empty) of ``linear_act_fwd``.

    ``saved`` is y when ``from_output`` else z, or empty for identity (derivative 1).
    dZ = grad_output ⊙ act'(saved); dx = dZ @ weight; dweight = dZ^T @ x; dbias = Σ_rows dZ.
    """
    M, K = x.shape
    N = weight.shape[0]
    if backend.active(x) == "torch" or min(M, N, K) == 0:
        # Zero-sized problems have nothing to launch; torch gives the right empty/zero shapes.
        grad_preact = torch_path.act_grad(grad_output, saved, activation, param, from_output)
        grad_input, grad_weight, grad_bias = torch_path.linear_backward(grad_preact, x, weight,
                                                                        has_bias)
        return grad_input, grad_weight, (grad_bias if has_bias else _empty(x))
    if activation == "identity":
        grad_preact = grad_output
    else:
        grad_preact = linear_act_kernels.act_grad(grad_output, saved, activation, param,
                                                  from_output)
    grad_input, _ = linear_act_kernels.matmul_rowsum(grad_preact, weight, x.dtype, rowsum=False)
    grad_weight, grad_bias = linear_act_kernels.matmul_rowsum(grad_preact.T, x, weight.dtype,
                                                              rowsum=has_bias)
    return grad_input, grad_weight, (grad_bias if has_bias else _empty(x))


@linear_act_bwd.register_fake
def _(grad_output, x, weight, saved, activation, param, from_output, has_bias):
    N = weight.shape[0]
    return (x.new_empty(x.shape), weight.new_empty(weight.shape),
            weight.new_empty((N,)) if has_bias else x.new_empty((0,)))


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
    grad_input, grad_weight, grad_bias = linear_act_bwd(
        grad_y, x, weight, saved, ctx.activation, ctx.param, ctx.from_output, ctx.has_bias)
    return (grad_input if ctx.needs_input_grad[0] else None,
            grad_weight if ctx.needs_input_grad[1] else None,
            grad_bias if ctx.has_bias and ctx.needs_input_grad[2] else None,
            None, None, None)


torch.library.register_autograd("fusedact::linear_act_fwd", _linear_act_backward,
                                setup_context=_linear_act_setup_context)
