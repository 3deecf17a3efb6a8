"""Activation functions as ``@triton.jit`` pairs, written once and used by every kernel.

``apply_activation(z, ACTIVATION, param)`` computes y = act(z) and
``activation_grad(saved, ACTIVATION, param, FROM_OUTPUT)`` computes dy/dz, either from the
output y (``FROM_OUTPUT=True``: identity, sigmoid, tanh, relu, leaky_relu with slope >= 0,
elu with alpha >= 0) or from the pre-activation z (gelu, gelu_tanh, silu, and the rest when
their parameter makes y ambiguous). ``ACTIVATION`` is a constexpr code from the table below,
so each kernel is compiled for one activation and the switch costs nothing at run time.
``param`` is leaky_relu's ``negative_slope`` or elu's ``alpha`` (ignored by the others), a
run-time fp32 scalar so that a new slope does not recompile.

All math is fp32 (callers upcast). Only ``tl.*`` functions are used, because
``triton.language.extra.libdevice`` does not run in the interpreter: tanh is 2*sigmoid(2z)-1.
NaN follows torch: each comparison is written the way torch's kernel writes it, so a NaN
takes the same branch in the forward and in the gradient as it does in eager torch.
"""
import triton
import triton.language as tl

# Codes for the ACTIVATION constexpr. The names match torch.nn.functional.
IDENTITY = tl.constexpr(0)
SIGMOID = tl.constexpr(1)
TANH = tl.constexpr(2)
RELU = tl.constexpr(3)
LEAKY_RELU = tl.constexpr(4)
ELU = tl.constexpr(5)
GELU = tl.constexpr(6)
GELU_TANH = tl.constexpr(7)
SILU = tl.constexpr(8)

#: name -> constexpr code; the host side maps user-facing names through this table.
CODES = {
    "identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4,
    "elu": 5, "gelu": 6, "gelu_tanh": 7, "silu": 8,
}

# Globals read inside @triton.jit must be tl.constexpr: the interpreter accepts plain floats,
# but the GPU compiler rejects them (NameError), which only an ahead-of-time build shows.
_SQRT_HALF = tl.constexpr(0.7071067811865476)       # 1/sqrt(2), for the erf form of gelu
_INV_SQRT_2PI = tl.constexpr(0.3989422804014327)    # 1/sqrt(2*pi), the normal density's constant
_SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)  # sqrt(2/pi), for the tanh form of gelu
_GELU_TANH_CUBIC = tl.constexpr(0.044715)


@triton.jit
def _sigmoid(z):
    return 1.0 / (1.0 + tl.exp(-z))


@triton.jit
def _tanh(z):
    return 2.0 * _sigmoid(2.0 * z) - 1.0


@triton.jit
def apply_activation(z, ACTIVATION: tl.constexpr, param):
    """y = act(z), elementwise on an fp32 block."""
    if ACTIVATION == SIGMOID:
        y = _sigmoid(z)
    elif ACTIVATION == TANH:
        y = _tanh(z)
    elif ACTIVATION == RELU:
        y = tl.where(z < 0.0, 0.0, z)
    elif ACTIVATION == LEAKY_RELU:
        y = tl.where(z < 0.0, z * param, z)
    elif ACTIVATION == ELU:
        y = tl.where(z < 0.0, param * (tl.exp(z) - 1.0), z)
    elif ACTIVATION == GELU:
        y = 0.5 * z * (1.0 + tl.math.erf(z * _SQRT_HALF))
    elif ACTIVATION == GELU_TANH:
        inner = _SQRT_2_OVER_PI * (z + _GELU_TANH_CUBIC * z * z * z)
        y = 0.5 * z * (1.0 + _tanh(inner))
    elif ACTIVATION == SILU:
        y = z * _sigmoid(z)
    else:
        y = z
    return y


@triton.jit
def activation_grad(saved, ACTIVATION: tl.constexpr, param, FROM_OUTPUT: tl.constexpr):
    """dy/dz on an fp32 block; ``saved`` is y when FROM_OUTPUT else z.

    The output forms are exact where y determines the branch: relu/leaky_relu/elu treat
    y <= 0 as the negative side, which matches torch at z = 0 (relu: 0, leaky: slope,
    elu: alpha). Both forms return 1.0 for identity.
    """
    if FROM_OUTPUT:
        if ACTIVATION == SIGMOID:
            grad = saved * (1.0 - saved)
        elif ACTIVATION == TANH:
            grad = 1.0 - saved * saved
        elif ACTIVATION == RELU:
            grad = tl.where(saved <= 0.0, 0.0, 1.0)
        elif ACTIVATION == LEAKY_RELU:
            grad = tl.where(saved > 0.0, 1.0, param)
        elif ACTIVATION == ELU:
            grad = tl.where(saved <= 0.0, saved + param, 1.0)
        else:
            grad = tl.full(saved.shape, 1.0, tl.float32)
    else:
        z = saved
        if ACTIVATION == SIGMOID:
            s = _sigmoid(z)
            grad = s * (1.0 - s)
        elif ACTIVATION == TANH:
            t = _tanh(z)
            grad = 1.0 - t * t
        elif ACTIVATION == RELU:
            grad = tl.where(z <= 0.0, 0.0, 1.0)
        elif ACTIVATION == LEAKY_RELU:
            grad = tl.where(z > 0.0, 1.0, param)
        elif ACTIVATION == ELU:
            grad = tl.where(z <= 0.0, param * tl.exp(z), 1.0)
        elif ACTIVATION == GELU:
            cdf = 0.5 * (1.0 + tl.math.erf(z * _SQRT_HALF))
            grad = cdf + z * _INV_SQRT_2PI * tl.exp(-0.5 * z * z)
        elif ACTIVATION == GELU_TANH:
            inner = _SQRT_2_OVER_PI * (z + _GELU_TANH_CUBIC * z * z * z)
            t = _tanh(inner)
            d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_CUBIC * z * z)
            grad = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * d_inner
        elif ACTIVATION == SILU:
            s = _sigmoid(z)
            grad = s * (1.0 + z * (1.0 - s))
        else:
            grad = tl.full(z.shape, 1.0, tl.float32)
    return grad
