"""ff.softmax / log_softmax / TemperatureSoftmax against the float64 reference.

Under the interpreter the kernels' limits are tiny (kernels.softmax.INTERPRETER_LIMITS: one
pass up to 64 columns, 32-wide streaming blocks, rows split when fewer than 8 programs
would run), so small ragged shapes take every path; ``plan`` is asserted so a test cannot
silently take another path than it names.
"""
import math

import pytest
import torch

from fusedact import backend, reference
from fusedact import functional as ff
from fusedact import nn as fnn
from fusedact import ops
from fusedact.kernels import softmax as softmax_kernels
from _poison import assert_close, poison

# (dtype, rtol, atol·max|ref|). fp32: fp32 math on exact inputs, errors ~1e-7 relative
# (log-softmax: ~1e-6 absolute on values ~10). fp16: the output rounding alone is 2^-11
# (~5e-4) relative, and the backward reads the rounded y. bf16: the interpreter truncates
# fp32 -> bf16 (2^-7 ~ 8e-3 relative), and the backward reads that truncated y.
TOLERANCES = [
    (torch.float32, 1e-5, 1e-5),
    (torch.float16, 3e-3, 2e-3),
    (torch.bfloat16, 3e-2, 2e-2),
]


@pytest.fixture(autouse=True)
def _poison_outputs(monkeypatch):
    poison(monkeypatch)


def _check(x, temperature, dim, log, rtol, atol):
    """Forward and backward of fusedact vs the float64 reference of the same input."""
    x = x.detach().requires_grad_()
    fn = ff.log_softmax if log else ff.softmax
    y = fn(x, temperature=temperature, dim=dim)
    assert y.dtype == x.dtype and y.shape == x.shape
    x64 = x.detach().double().requires_grad_()
    y64 = reference.softmax(x64, temperature, dim, log)
    assert_close(y, y64, rtol, atol)
    grad_output = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, grad_output)
    (dx64,) = torch.autograd.grad(y64, x64, grad_output.double())
    assert dx.dtype == x.dtype
    assert_close(dx, dx64, rtol, atol, scale=grad_output.abs().max() / temperature)


@pytest.mark.parametrize("dtype,rtol,atol", TOLERANCES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,temperature", [
    ((5, 1), 1.0), ((4, 7), 0.05), ((3, 64), 20.0), ((6, 37), 0.5), ((2, 3, 13), 2.0),
])
def test_one_pass_matches_reference(shape, temperature, log, dtype, rtol, atol):
    assert softmax_kernels.plan(math.prod(shape[:-1]), shape[-1]).path == "one_pass"
    _check(torch.randn(shape, dtype=dtype) * 3, temperature, -1, log, rtol, atol)


@pytest.mark.parametrize("dtype,rtol,atol", TOLERANCES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,path", [((8, 65), "stream"), ((2, 300), "split"),
                                        ((1, 129), "split")])
def test_streaming_and_split_paths(shape, path, log, dtype, rtol, atol):
    if not backend.interpreter_enabled():
        pytest.skip("the path thresholds asserted here are the interpreter's")
    assert softmax_kernels.plan(*shape).path == path
    _check(torch.randn(shape, dtype=dtype) * 4, 0.7, -1, log, rtol, atol)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0, 2.0, 10.0, 20.0])
def test_temperatures(temperature):
    _check(torch.randn(3, 29) * 5, temperature, -1, False, 1e-5, 1e-5)
    _check(torch.randn(3, 29) * 5, temperature, -1, True, 1e-5, 1e-5)


@pytest.mark.parametrize("dim", [0, 1, -2])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_non_last_dim(dim, log):
    _check(torch.randn(7, 5, 3), 1.5, dim, log, 1e-5, 1e-5)


def test_non_contiguous_input():
    base = torch.randn(9, 40)
    _check(base[::2, 3:33], 0.8, -1, False, 1e-5, 1e-5)   # row stride 80, sliced columns
    _check(base.t(), 1.3, -1, True, 1e-5, 1e-5)           # column stride 40
    _check(base.t(), 1.3, 0, False, 1e-5, 1e-5)


def test_1d_0d_and_empty():
    _check(torch.randn(13), 2.0, 0, False, 1e-5, 1e-5)
    _check(torch.randn(13), 2.0, -1, True, 1e-5, 1e-5)
    scalar = torch.tensor(3.0)
    assert torch.equal(ff.softmax(scalar, 2.0), torch.softmax(scalar / 2.0, 0))
    assert torch.equal(ff.log_softmax(scalar, 2.0), torch.log_softmax(scalar / 2.0, 0))
    for shape, dim in [((0, 5), -1), ((3, 0), -1), ((0, 5), 0), ((2, 0, 4), 2)]:
        x = torch.randn(shape, requires_grad=True)
        y = ff.softmax(x, 3.0, dim)
        assert y.shape == x.shape
        y.sum().backward()
        assert x.grad.shape == x.shape


def test_masked_and_huge_logits():
    x = torch.randn(4, 20) * 3
    x[:, ::3] = float("-inf")                 # masked classes: probability exactly 0
    x[1] = float("-inf")
    x[1, 5] = 2.0                             # a row with one finite logit
    _check(x, 0.5, -1, False, 1e-5, 1e-5)
    y = ff.softmax(x, 0.5)
    assert (y[:, ::3] == 0).all() and not y.isnan().any()
    assert (ff.log_softmax(x, 0.5)[:, ::3] == float("-inf")).all()
    huge = torch.randn(3, 50) * 1e4           # ±1e4: no overflow at T = 0.05 (z ~ 2e5)
    _check(huge, 0.05, -1, False, 1e-5, 1e-5)
    _check(huge, 0.05, -1, True, 1e-5, 1e-5)


def test_all_masked_row_is_nan_like_torch():
    x = torch.randn(3, 10)
    x[1] = float("-inf")
    for log, torch_fn in [(False, torch.softmax), (True, torch.log_softmax)]:
        fn = ff.log_softmax if log else ff.softmax
        y = fn(x, 2.0)
        expected = torch_fn(x / 2.0, -1)
        assert y[1].isnan().all() and expected[1].isnan().all()
        torch.testing.assert_close(y[[0, 2]], expected[[0, 2]])


def test_split_path_is_deterministic():
    if not backend.interpreter_enabled():
        pytest.skip("the split threshold asserted here is the interpreter's")
    x = torch.randn(2, 300)
    assert softmax_kernels.plan(2, 300).path == "split"
    assert torch.equal(ff.softmax(x, 0.7), ff.softmax(x, 0.7))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_gradcheck_float64(log):
    x = torch.randn(3, 9, dtype=torch.float64, requires_grad=True)
    fn = ff.log_softmax if log else ff.softmax
    assert torch.autograd.gradcheck(lambda t: fn(t, 0.7), (x,))


def test_opcheck():
    x = torch.randn(4, 11)
    for log in (False, True):
        torch.library.opcheck(ops.softmax_fwd, (x, 0.5, log))
        torch.library.opcheck(ops.softmax_fwd, (x.requires_grad_(), 0.5, log))
        x = x.detach()
        y = ops.softmax_fwd(x, 0.5, log)
        torch.library.opcheck(ops.softmax_bwd, (torch.randn(4, 11), y, 0.5, log))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x):
        return ff.softmax(x, 2.0).sum() + ff.log_softmax(x, 0.5, dim=0).square().sum()

    x = torch.randn(5, 12, requires_grad=True)
    loss = f(x)
    loss.backward()
    x64 = x.detach().double().requires_grad_()
    expected = (reference.softmax(x64, 2.0).sum()
                + reference.softmax(x64, 0.5, 0, log=True).square().sum())
    expected.backward()
    assert_close(loss, expected, 1e-5, 1e-5)
    assert_close(x.grad, x64.grad, 1e-5, 1e-5)


def test_torch_path_matches_reference():
    with backend.force("torch"):
        assert backend.active(torch.empty(1)) == "torch"
        for dtype, rtol, atol in TOLERANCES:
            for log in (False, True):
                _check(torch.randn(4, 300, dtype=dtype), 0.3, -1, log, rtol, atol)
                _check(torch.randn(6, 5, 4, dtype=dtype), 3.0, 1, log, rtol, atol)


def test_triton_path_runs(monkeypatch):
    if not backend.interpreter_enabled():
        pytest.skip("checks the interpreter path; on a GPU the compiled path is the default")
    calls = []
    for name in ("softmax_forward", "softmax_backward"):
        original = getattr(softmax_kernels, name)
        monkeypatch.setattr(softmax_kernels, name,
                            lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    x = torch.randn(3, 10, requires_grad=True)
    assert backend.active(x) == "interpret"
    ff.softmax(x, 2.0).square().sum().backward()
    assert calls == ["softmax_forward", "softmax_backward"]


def test_module():
    module = fnn.TemperatureSoftmax(temperature=0.5, dim=0, log=True)
    x = torch.randn(6, 4)
    assert_close(module(x), reference.softmax(x.double(), 0.5, 0, True), 1e-5, 1e-5)
    assert "temperature=0.5" in repr(module)
    with pytest.raises(ValueError, match="temperature"):
        fnn.TemperatureSoftmax(temperature=0.0)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        ff.softmax(torch.randn(2, 3), temperature)


def test_bad_inputs():
    with pytest.raises(TypeError, match="temperature"):
        ff.softmax(torch.randn(2, 3), "2")
    with pytest.raises(TypeError, match="input must be a floating tensor"):
        ff.softmax(torch.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        ff.log_softmax([1.0, 2.0])
    with pytest.raises(ValueError, match="dim"):
        ff.softmax(torch.randn(2, 3), dim=2)
    with pytest.raises(TypeError, match="dim"):
        ff.softmax(torch.randn(2, 3), dim=1.0)


def test_int64_offsets_on_gpu():
    if not torch.cuda.is_available() or backend.interpreter_enabled():
        pytest.skip("needs a GPU: a 65536 x 65536 input (8 GiB in fp16) is out of the "
                    "interpreter's reach")
    x = torch.randn(65536, 65536, dtype=torch.float16, device="cuda")
    y = ff.softmax(x, 2.0)
    for row in (0, 40000, 65535):
        torch.testing.assert_close(y[row].float(), torch.softmax(x[row].float() / 2.0, -1),
                                   rtol=3e-3, atol=1e-6)
