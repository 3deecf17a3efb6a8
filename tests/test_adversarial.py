"""Adversarial inputs, one row each, every row with a defined outcome: torch's result to
tolerance (NaN and ±inf at exactly the same places, see helpers.assert_close), or a clear
exception. Outputs are poisoned (NaN-filled allocations), so an unwritten element fails.

"torch's result" is torch on the same values in float64 (``reference``), rounded to the
output's dtype (a log-probability of -4e38 is -inf in fp32), except where the fp32
computation itself overflows (|x / T| or |x W^T| past 3.4e38): there it is torch in fp32,
whose answer (NaN / inf) is the same as fusedact's. One deliberate difference from torch:
a class that both models mask (-inf), or the teacher masks, adds 0 to the KD loss (torch's
kl_div gives 0·inf = NaN there).
"""

import pytest
import torch
import torch.nn.functional as F

import fusedact
from fusedact import functional as ff
from fusedact import ops, reference
from helpers import DEVICE, assert_close

pytestmark = pytest.mark.usefixtures("poison")
INF, NAN = float("inf"), float("nan")
TOL = (1e-5, 1e-5)  # fp32 math on exact fp32 inputs (see test_softmax.py)


def _rounded(expected: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The float64 oracle rounded to the output's dtype, as torch's result would be."""
    return expected.detach().to(like.dtype)


def _rows(*values):
    return torch.tensor(values, dtype=torch.float32, device=DEVICE)


def _randn(*shape, scale=1.0):
    return torch.randn(*shape, device=DEVICE) * scale


# ------------------------------------------------------------------ softmax, log_softmax

def _with_specials():
    x = _randn(5, 9)
    x[0, 3] = NAN                  # one NaN: the whole row is NaN, as torch
    x[1, 2] = INF                  # +inf: inf - inf in the shift, NaN row, as torch
    x[2, ::2] = -INF               # masked classes: probability 0 / log-probability -inf
    x[3] = -INF                    # a row of all -inf: NaN, as torch
    return x


def _overlapping():
    base = _randn(40)
    return base.as_strided((5, 7), (3, 1))      # rows share elements


SOFTMAX_CASES = {
    "nan_inf_masked_rows": (_with_specials, 1.0, "float64"),
    "logits_1e4_T1": (lambda: _randn(4, 33, scale=1e4), 1.0, "float64"),
    "logits_1e4_T0.01": (lambda: _randn(4, 33, scale=1e4), 0.01, "float64"),
    "logits_1e38_T1": (lambda: _rows([1e38, -1e38, 3e38, 0.0], [1e38, 1e38, -3e38, 2.0]), 1.0,
                       "float64"),
    "logits_3e38_T0.5_overflow": (lambda: _rows([3e38, 1.0, -3e38], [2.0, 1.0, 0.5]), 0.5,
                                  "float32"),
    "denormals": (lambda: _randn(3, 17) * 1e-40, 1.0, "float64"),
    "one_element": (lambda: _randn(1, 1), 0.5, "float64"),
    "one_column": (lambda: _randn(6, 1), 2.0, "float64"),
    "one_dim": (lambda: _randn(7), 2.0, "float64"),
    "zero_dim": (lambda: torch.tensor(1.5, device=DEVICE), 2.0, "float64"),
    "empty_rows": (lambda: _randn(0, 5), 2.0, "float64"),
    "empty_columns": (lambda: _randn(3, 0), 2.0, "float64"),
    "expanded_rows_stride0": (lambda: _randn(1, 11).expand(6, 11), 0.7, "float64"),
    "expanded_columns_stride0": (lambda: _randn(6, 1).expand(6, 11), 0.7, "float64"),
    "overlapping_view": (_overlapping, 1.3, "float64"),
    "transposed": (lambda: _randn(13, 6).t(), 1.3, "float64"),
}


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("case", list(SOFTMAX_CASES))
def test_softmax_adversarial(case, log):
    build, temperature, oracle = SOFTMAX_CASES[case]
    x = build().detach().requires_grad_()  # detach keeps the strides (stride 0, overlaps)
    fn = ff.log_softmax if log else ff.softmax
    y = fn(x, temperature)
    assert y.shape == x.shape and y.dtype == x.dtype
    x_ref = x.detach().to(getattr(torch, oracle)).requires_grad_()
    torch_fn = torch.log_softmax if log else torch.softmax
    y_ref = torch_fn(x_ref / temperature, -1)
    assert_close(y, _rounded(y_ref, y), TOL, what="y")
    dy = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, dy)
    (dx_ref,) = torch.autograd.grad(y_ref, x_ref, dy.to(x_ref.dtype))
    dy_max = dy.abs().max().item() if dy.numel() else 1.0
    assert_close(dx, _rounded(dx_ref, dx), TOL, scale=dy_max / temperature, what="dx")


@pytest.mark.parametrize("fn", [ff.softmax, ff.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_bad_input(fn):
    with pytest.raises(TypeError, match="input must be a floating tensor.*int64"):
        fn(torch.arange(6, device=DEVICE).reshape(2, 3))
    with pytest.raises(TypeError, match="input must be a floating tensor.*complex64"):
        fn(torch.randn(2, 3, dtype=torch.complex64, device=DEVICE))
    with pytest.raises(TypeError, match="input must be a torch.Tensor, got list"):
        fn([[1.0, 2.0]])
    for temperature in (0.0, -1.0, NAN, INF):
        with pytest.raises(ValueError, match="temperature must be a positive finite number"):
            fn(_randn(2, 3), temperature)


def test_meta_tensors_give_shapes_only():
    """meta tensors (no data) go through the ops' fake impls: the right shapes and dtypes,
    as torch's own ops give, and no kernel runs."""
    x = torch.randn(3, 5, device="meta", dtype=torch.float16)
    for y in (ff.softmax(x, 2.0), ff.log_softmax(x, 2.0, dim=0)):
        assert y.device.type == "meta" and y.shape == (3, 5) and y.dtype == torch.float16
    loss = ff.kd_loss(x, x, 2.0, "none")
    assert loss.device.type == "meta" and loss.shape == (3,)
    y = fusedact.linear_act(x, torch.randn(4, 5, device="meta", dtype=torch.float16), None,
                            "gelu")
    assert y.device.type == "meta" and y.shape == (3, 4)


# ------------------------------------------------------------------------------ kd_loss

def _kd_specials():
    s, t = _randn(6, 11, scale=3), _randn(6, 11, scale=3)
    s[0, 4] = NAN                                   # NaN in the student: NaN row
    t[1, 2] = NAN                                   # NaN in the teacher: NaN row
    s[2, ::3] = -INF                                # classes both models mask: add 0
    t[2, ::3] = -INF
    t[3, 1] = -INF                                  # the teacher alone masks a class
    s[4, 5] = 1e4                                   # one huge logit
    t[5] = -INF                                     # a teacher row of all -inf: NaN, as torch
    return s, t


KD_CASES = {
    "nan_masked_huge_rows": _kd_specials,
    "logits_1e4": lambda: (_randn(3, 20, scale=1e4), _randn(3, 20, scale=1e4)),
    "logits_1e38": lambda: (_rows([1e38, -1e38, 0.0], [3e38, 1.0, 2.0]),
                            _rows([-1e38, 1e38, 0.0], [1.0, 3e38, 2.0])),
    "denormals": lambda: (_randn(3, 9) * 1e-40, _randn(3, 9) * 1e-40),
    "one_class": lambda: (_randn(4, 1), _randn(4, 1)),
    "one_row": lambda: (_randn(1, 7), _randn(1, 7)),
    "one_dim": lambda: (_randn(9), _randn(9)),
    "expanded_stride0": lambda: (_randn(1, 13).expand(5, 13), _randn(5, 1).expand(5, 13)),
    "overlapping_views": lambda: (_overlapping(), _overlapping()),
    "transposed": lambda: (_randn(8, 5).t(), _randn(8, 5).t()),
}


@pytest.mark.parametrize("reduction", ["none", "sum", "batchmean"])
@pytest.mark.parametrize("case", list(KD_CASES))
def test_kd_loss_adversarial(case, reduction):
    student, teacher = KD_CASES[case]()
    student = student.detach().requires_grad_()
    loss = ff.kd_loss(student, teacher, 2.0, reduction)
    s64 = student.detach().double().requires_grad_()
    expected = reference.kd_loss(s64, teacher.double(), 2.0, reduction)
    assert_close(loss, _rounded(expected, loss), (2e-5, 2e-5),
                 scale=max(expected[expected.isfinite()].abs().max().item()
                           if expected.isfinite().any() else 1.0, 1.0), what="loss")
    grad_output = torch.rand_like(expected) + 0.5
    (grad,) = torch.autograd.grad(loss, student, grad_output.to(loss.dtype))
    (grad64,) = torch.autograd.grad(expected, s64, grad_output)
    # the gradient is a difference of probabilities, T·(p_s - p_t)·c: its rounding error is
    # relative to the probabilities (here ~T/V), not to the difference (1e-41 for denormals)
    rows = s64.numel() // max(s64.shape[-1], 1)
    floor = 2.0 * torch.softmax(s64.detach() / 2.0, -1).nan_to_num().max().item() * (
        1.0 / rows if reduction == "batchmean" else 1.0)
    finite = grad64[grad64.isfinite()]
    scale = max(finite.abs().max().item() if finite.numel() else 0.0, floor)
    assert_close(grad, _rounded(grad64, grad), (2e-5, 2e-5), scale=scale, what="grad")


@pytest.mark.parametrize("path", ["default", "torch"])
def test_kd_loss_nan_in_the_teacher_is_nan_on_every_path(path):
    if path == "torch" and DEVICE != "cpu":
        pytest.skip("the plain-torch path is the CPU path")
    s, t = _randn(3, 7), _randn(3, 7)
    t[1, 4] = NAN
    t[2, 2] = -INF                       # a masked class still adds exactly 0
    with fusedact.backend.force("torch" if path == "torch" else None):
        loss = ff.kd_loss(s, t, 2.0, "none")
    expected = reference.kd_loss(s.double(), t.double(), 2.0, "none")
    assert loss[1].isnan() and torch.isfinite(loss[[0, 2]]).all()
    assert_close(loss, _rounded(expected, loss), (2e-5, 2e-5), what="loss")


def test_kd_loss_empty_and_bad_input():
    for shape in [(0, 5), (3, 0)]:
        s = _randn(*shape).requires_grad_()
        loss = ff.kd_loss(s, _randn(*shape), 2.0, "sum")
        assert loss.item() == 0
        loss.backward()
        assert torch.equal(s.grad, torch.zeros_like(s))
    s, t = _randn(3, 5), _randn(3, 5)
    with pytest.raises(TypeError, match="share one dtype"):
        ff.kd_loss(s, t.half())
    with pytest.raises(ValueError, match="one device"):
        ff.kd_loss(s, torch.randn(3, 5, device="meta"))
    with pytest.raises(TypeError, match="student_logits must be a floating tensor"):
        ff.kd_loss(s.to(torch.int32), t.to(torch.int32))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ff.kd_loss(s[0, 0], t[0, 0])


def test_kd_loss_out_of_range_label_past_validation_is_nan():
    """functional.kd_loss checks CPU labels; GPU labels (and torch.compile) skip the check to
    avoid a device sync. The kernel then gives the row a NaN loss and gradient: visible,
    never a silently wrong number. Called on the op, below the validation, on any device."""
    s, t = _randn(4, 6), _randn(4, 6)
    labels = torch.tensor([0, 7, -100, -3], device=DEVICE)
    if fusedact.backend.active(s) == "torch":
        pytest.skip("the plain-torch path runs only with validated CPU labels")
    row_loss, grad = ops.kd_loss_fwd(s, t, labels, 2.0, 0.5, -100, "none", True)
    assert torch.isfinite(row_loss[0]) and row_loss[2] == 0
    assert row_loss[[1, 3]].isnan().all() and grad[[1, 3]].isnan().all()
    assert torch.isfinite(grad[[0, 2]]).all()


# --------------------------------------------------------------------------- linear_act

def _linear_case(x, weight, bias=None):
    return lambda: (x(), weight(), None if bias is None else bias())


LINEAR_CASES = {
    "nan_inf_in_input": _linear_case(
        lambda: torch.where(torch.rand(5, 6, device=DEVICE) < 0.15, INF, _randn(5, 6)),
        lambda: _randn(4, 6), lambda: _randn(4)),
    "nan_in_weight": _linear_case(
        lambda: _randn(5, 6), lambda: torch.where(torch.rand(4, 6, device=DEVICE) < 0.1, NAN,
                                                  _randn(4, 6))),
    "overflow_1e38": _linear_case(lambda: torch.full((3, 4), 1e38, device=DEVICE),
                                  lambda: torch.rand(2, 4, device=DEVICE) + 0.5),
    "denormals": _linear_case(lambda: _randn(4, 5) * 1e-40, lambda: _randn(3, 5),
                              lambda: _randn(3)),
    "one_by_one": _linear_case(lambda: _randn(1, 1), lambda: _randn(1, 1), lambda: _randn(1)),
    "expanded_input_stride0": _linear_case(lambda: _randn(1, 9).expand(7, 9),
                                           lambda: _randn(5, 9), lambda: _randn(5)),
    "expanded_weight_stride0": _linear_case(lambda: _randn(6, 9),
                                            lambda: _randn(1, 9).expand(5, 9)),
    "overlapping_input": _linear_case(_overlapping, lambda: _randn(3, 7)),
    "transposed_weight": _linear_case(lambda: _randn(6, 9), lambda: _randn(9, 5).t(),
                                      lambda: _randn(5)),
    "zero_out_features": _linear_case(lambda: _randn(4, 3), lambda: _randn(0, 3),
                                      lambda: _randn(0)),
}


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "elu"])
@pytest.mark.parametrize("case", list(LINEAR_CASES))
def test_linear_act_adversarial(case, activation):
    x, weight, bias = LINEAR_CASES[case]()
    leaves = [t.detach().requires_grad_() for t in (x, weight, bias) if t is not None]
    x, weight, bias = (leaves + [None])[:3]
    y = fusedact.linear_act(x, weight, bias, activation)
    _, param = fusedact.activations.resolve(activation)
    if case == "overflow_1e38":  # fp32 overflow: torch in fp32 is the answer (inf)
        expected = reference.activation(F.linear(x, weight, bias), activation, param)
    else:
        expected = reference.linear_act(x, weight, bias, activation, param)
    assert_close(y, expected, (1e-4, 1e-5), what="y")
    # gradients are compared where the output is finite (through a non-finite output they
    # are NaN/inf by arithmetic, not by a contract)
    dy = torch.randn_like(y) * torch.isfinite(expected)
    grads = torch.autograd.grad(y, leaves, dy)
    if torch.isfinite(x).all() and torch.isfinite(weight).all() and torch.isfinite(y).all():
        for got, want in zip(grads, reference.linear_act_backward(dy, x, weight, bias,
                                                                  activation, param)):
            assert_close(got, want, (1e-4, 1e-5), what="grad")


@pytest.mark.parametrize("needs", ["x", "weight", "bias", "x+bias", "weight+bias", "none"])
def test_linear_act_requires_grad_combinations(needs):
    x, weight, bias = _randn(5, 7), _randn(6, 7), _randn(6)
    tensors = {"x": x, "weight": weight, "bias": bias}
    for name in needs.split("+"):
        if name in tensors:
            tensors[name].requires_grad_()
    y = fusedact.linear_act(x, weight, bias, "silu")
    assert y.requires_grad == (needs != "none")
    if needs == "none":
        assert y.grad_fn is None
        with pytest.raises(RuntimeError, match="does not require grad"):
            y.sum().backward()
    else:
        y.backward(torch.ones_like(y))
    expected = dict(zip(("x", "weight", "bias"), reference.linear_act_backward(
        torch.ones_like(y), x.detach(), weight.detach(), bias.detach(), "silu", 0.0)))
    for name, tensor in tensors.items():
        if tensor.requires_grad:
            assert_close(tensor.grad, expected[name], (1e-4, 1e-5), what=f"grad {name}")
        else:
            assert tensor.grad is None


@pytest.mark.parametrize("op", ["linear_act", "softmax", "log_softmax", "kd_loss"])
def test_double_backward_is_a_clear_error(op):
    x = torch.randn(3, 4, dtype=torch.float64, device=DEVICE, requires_grad=True)
    out = {
        "linear_act": lambda: fusedact.linear_act(x, torch.randn_like(x[:2]), None, "tanh"),
        "softmax": lambda: ff.softmax(x, 2.0).square(),
        "log_softmax": lambda: ff.log_softmax(x, 2.0).square(),
        "kd_loss": lambda: ff.kd_loss(x, torch.randn_like(x), 2.0),
    }[op]().sum()
    (grad,) = torch.autograd.grad(out, x, create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        grad.sum().backward()
