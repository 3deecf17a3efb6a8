"""Property-based tests (hypothesis): every public op against the float64 reference on
random shapes (1, primes, one past a block), dtypes, activations and their parameters,
temperatures over orders of magnitude, reductions, strides and ``dim``.

Reproducible in CI: ``derandomize=True`` and ``database=None`` make every run draw the same
examples; a failure still shrinks to a minimal case, which hypothesis prints. Example counts
are bounded so the file runs in well under a minute through the interpreter. Tensor values
come from a drawn seed (``torch.Generator``), so a shrunk example is replayable.
"""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fusedact
from fusedact import reference
from fusedact import functional as ff
from helpers import DEVICE, FORWARD_TOL, GRAD_TOL, assert_close

pytestmark = pytest.mark.usefixtures("poison")

SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
# 1, primes, and sizes one past the interpreter's blocks (16/32/64 wide)
SIZES = st.sampled_from([1, 2, 3, 5, 7, 13, 17, 31, 33, 37, 64, 65, 67])
# Leading (batch) sizes: the interpreter costs ~4 ms per program, so the number of rows is
# kept small (a product of at most ~70); the row kernels' cost is per row block.
LEAD = st.lists(st.sampled_from([1, 2, 3, 5, 7, 13]), min_size=0, max_size=2)
DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64])
SEEDS = st.integers(0, 2**31 - 1)
EPS32 = 2.0 ** -24


def _randn(shape, seed, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * scale)


def _layout(base: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as ``base`` (on DEVICE) in another memory layout."""
    base = base.to(DEVICE)
    if layout == "contiguous":
        return base
    if layout == "transposed":          # column-major storage of the same matrix
        return base.transpose(-1, -2).contiguous().transpose(-1, -2)
    # "sliced": every other row of a buffer twice as tall, a column offset of 3
    padded = torch.empty(*base.shape[:-2], 2 * base.shape[-2], base.shape[-1] + 3,
                         dtype=base.dtype, device=DEVICE)
    view = padded[..., ::2, 3:]
    view.copy_(base)
    return view


# ------------------------------------------------------------------------ linear_act

ACTIVATION = st.sampled_from(fusedact.ACTIVATIONS).flatmap(lambda name: st.tuples(
    st.just(name),
    st.floats(-2.0, 2.0, allow_nan=False) if name in ("leaky_relu", "elu") else st.none()))


@settings(max_examples=30, **SETTINGS)
@given(lead=LEAD, in_features=SIZES, out_features=SIZES,
       dtype=DTYPES, activation=ACTIVATION, has_bias=st.booleans(),
       x_layout=st.sampled_from(["contiguous", "transposed", "sliced"]),
       w_transposed=st.booleans(), seed=SEEDS)
def test_linear_act_property(lead, in_features, out_features, dtype, activation, has_bias,
                             x_layout, w_transposed, seed):
    name, param = activation
    kwargs = {} if param is None else {"leaky_relu": {"negative_slope": param},
                                       "elu": {"alpha": param}}[name]
    shape = (*lead, in_features)
    x = _randn(shape if len(shape) >= 2 else (1, in_features), seed).to(dtype)
    x = _layout(x, x_layout if len(shape) >= 2 else "contiguous").reshape(shape)
    weight = (_randn((out_features, in_features), seed + 1) / in_features ** 0.5).to(dtype)
    weight = _layout(weight, "transposed" if w_transposed else "contiguous")
    bias = (0.5 * _randn((out_features,), seed + 2)).to(dtype).to(DEVICE) if has_bias else None
    leaves = [t.requires_grad_() for t in (x, weight, bias) if t is not None]
    y = fusedact.linear_act(x, weight, bias, name, **kwargs)
    assert y.dtype == dtype and y.shape == (*lead, out_features)
    _, used_param = fusedact.activations.resolve(name, kwargs.get("negative_slope"),
                                                 kwargs.get("alpha"))
    assert_close(y, reference.linear_act(x, weight, bias, name, used_param), FORWARD_TOL[dtype],
                 what="y")
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, leaves, dy)
    expected = reference.linear_act_backward(dy, x, weight, bias, name, used_param)
    for got, want, what in zip(grads, expected, ("grad input", "grad weight", "grad bias")):
        assert_close(got, want, GRAD_TOL[dtype], what=what)


# ------------------------------------------------------------------ softmax, log_softmax

# (rtol, atol·max|ref|) beside the |z| term below: fp32 math, then the output rounding of
# the dtype (fp16 2^-11; bf16 2^-8, truncated by the interpreter: 2^-7), twice for the
# backward, which reads the rounded y.
SOFTMAX_TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (3e-3, 2e-3),
               torch.bfloat16: (3e-2, 2e-2), torch.float64: (1e-10, 1e-10)}


def _z_term(dtype, max_abs_z):
    """z = x·(1/T) is rounded to fp32: an absolute error of |z|·2^-24 in z is a relative
    error of the same size in exp(z - m) and an absolute one in log-softmax. Any fp32
    softmax(x / T) has it (torch's too); the float64 reference does not."""
    return 0.0 if dtype == torch.float64 else 4 * EPS32 * max_abs_z


@settings(max_examples=30, **SETTINGS)
@given(shape=st.lists(SIZES, min_size=1, max_size=3).filter(lambda s: math.prod(s) <= 700),
       data=st.data(), dtype=DTYPES,
       log_temperature=st.floats(-1.3, 1.3), log_scale=st.floats(-1.0, 1.5),
       log=st.booleans(), wide=st.booleans(), seed=SEEDS)
def test_softmax_property(shape, data, dtype, log_temperature, log_scale, log, wide, seed):
    if wide:  # a row past the one-pass block: the streaming or split-row path
        rows = data.draw(st.sampled_from([1, 2, 3, 9]), label="rows")
        shape = [rows, data.draw(st.sampled_from([129, 257, 300]), label="wide")]
        dim = -1
    else:
        dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    temperature, scale = 10.0 ** log_temperature, 10.0 ** log_scale
    x = _randn(shape, seed, scale).to(dtype).to(DEVICE)
    if len(shape) >= 2 and data.draw(st.booleans(), label="transposed"):
        x = x.transpose(0, -1).contiguous().transpose(0, -1)
    x.requires_grad_()
    fn = ff.log_softmax if log else ff.softmax
    y = fn(x, temperature, dim)
    assert y.dtype == dtype and y.shape == x.shape
    x64 = x.detach().double().requires_grad_()
    y64 = reference.softmax(x64, temperature, dim, log)
    rtol, atol = SOFTMAX_TOL[dtype]
    z_term = _z_term(dtype, x64.detach().abs().max().item() / temperature)
    if log:  # |log-softmax| grows like the spread of z: the z error is absolute there
        assert_close(y, y64, (rtol, atol + z_term))
    else:
        assert_close(y, y64, (rtol + z_term, atol))
    dy = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, dy)
    (dx64,) = torch.autograd.grad(y64, x64, dy.double())
    assert_close(dx, dx64, (rtol + z_term, atol + z_term), scale=dy.abs().max() / temperature)


# -------------------------------------------------------------------------- kd_loss

# fp32: sums of <= ~300 terms ~1e-6; fp16 / bf16: the loss is returned and the gradient
# stored in the input dtype (2^-11; 2^-7 truncated).
KD_TOL = {torch.float32: (2e-5, 2e-5), torch.float16: (3e-3, 3e-3),
          torch.bfloat16: (3e-2, 3e-2), torch.float64: (1e-10, 1e-10)}


@settings(max_examples=30, **SETTINGS)
@given(lead=LEAD, classes=st.one_of(SIZES, st.just(129)),
       dtype=DTYPES, log_temperature=st.floats(-1.0, 1.3), log_scale=st.floats(-1.0, 1.0),
       reduction=st.sampled_from(["batchmean", "sum", "mean", "none"]),
       label_mode=st.sampled_from(["none", "labels", "hard"]),
       hard_weight=st.floats(0.05, 1.0), seed=SEEDS)
def test_kd_loss_property(lead, classes, dtype, log_temperature, log_scale, reduction,
                          label_mode, hard_weight, seed):
    shape = (*lead, classes)
    temperature, scale = 10.0 ** log_temperature, 10.0 ** log_scale
    student = _randn(shape, seed, scale).to(dtype).to(DEVICE).requires_grad_()
    teacher = _randn(shape, seed + 1, scale).to(dtype).to(DEVICE)
    labels = None
    if label_mode != "none":
        generator = torch.Generator().manual_seed(seed + 2)
        labels = torch.randint(0, classes, tuple(lead), generator=generator)
        labels.view(-1)[1::3] = -100  # some rows ignored, never all (the first is kept)
        labels = labels.to(DEVICE)
    weight = hard_weight if label_mode == "hard" else 0.0
    loss = ff.kd_loss(student, teacher, temperature, reduction, labels=labels,
                      hard_weight=weight)
    assert loss.dtype == dtype
    s64 = student.detach().double().requires_grad_()
    expected = reference.kd_loss(s64, teacher.double(), temperature, reduction, -100, labels,
                                 weight)
    rtol, atol = KD_TOL[dtype]
    z_max = max(student.detach().abs().max().item(), teacher.abs().max().item()) / temperature
    z_term = _z_term(dtype, z_max)
    # The z rounding (see _z_term) enters the loss through T²·KL: an absolute error of about
    # T²·z_term per row (x2: student and teacher), summed over the rows "sum" adds.
    rows = max(1, math.prod(lead)) if reduction == "sum" else 1
    scale = max(expected.abs().max().item(), 1.0)
    assert_close(loss, expected, (rtol, atol + 2 * z_term * temperature ** 2 * rows / scale),
                 scale=scale)
    grad_output = torch.rand_like(expected) + 0.5
    (grad,) = torch.autograd.grad(loss, student, grad_output.to(loss.dtype))
    (grad64,) = torch.autograd.grad(expected, s64, grad_output)
    # dL/ds = T·(p_s - p_t)·c: the probabilities carry the z_term relative error
    assert_close(grad, grad64, (rtol + z_term, atol + z_term))
