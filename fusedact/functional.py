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


def _check_tensor(name: str, value, dims: Optional[str] = None) -> None:
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

    Saved for backward: input and weight, plus y for identity-free activations whose
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
