"""fusedact.kd_loss / KDLoss against the float64 reference and torch's own formula."""
import pytest
import torch
import torch.nn.functional as F

from fusedact import backend, reference
from fusedact import functional as ff
from fusedact import nn as fnn
from fusedact import ops
from fusedact.kernels import kd_loss as kd_kernels
from fusedact.kernels import softmax as softmax_kernels
from _poison import assert_close, poison

REDUCTIONS = ["batchmean", "sum", "mean", "none"]
# (dtype, rtol, atol·scale). fp32: fp32 math, sums of <= 100 terms: ~1e-6 relative.
# fp16: the loss is summed in fp32 but returned in fp16 (2^-11 rounding); the gradient is
# stored in fp16. bf16: the interpreter truncates to bf16 (2^-7) and the gradient is stored
# in bf16. The inputs are the same rounded values for both sides.
TOLERANCES = [
    (torch.float32, 2e-5, 2e-5),
    (torch.float16, 3e-3, 3e-3),
    (torch.bfloat16, 3e-2, 3e-2),
]
LABEL_MODES = ["no_labels", "labels", "hard"]


@pytest.fixture(autouse=True)
def _poison_outputs(monkeypatch):
    poison(monkeypatch)


def _inputs(shape, dtype, label_mode, scale=3.0):
    student = (torch.randn(shape) * scale).to(dtype)
    teacher = (torch.randn(shape) * scale).to(dtype)
    labels, hard_weight = None, 0.0
    if label_mode != "no_labels":
        labels = torch.randint(0, shape[-1], shape[:-1])
        labels.view(-1)[::3] = -100                          # some rows ignored
        hard_weight = 0.3 if label_mode == "hard" else 0.0
    return student, teacher, labels, hard_weight


def _check(student, teacher, temperature, reduction, labels, hard_weight, rtol, atol):
    student = student.detach().requires_grad_()
    loss = ff.kd_loss(student, teacher, temperature, reduction, labels=labels,
                      hard_weight=hard_weight)
    assert loss.dtype == student.dtype
    s64 = student.detach().double().requires_grad_()
    expected = reference.kd_loss(s64, teacher.double(), temperature, reduction, -100, labels,
                                 hard_weight)
    # a loss of exactly 0 (V = 1) is matched to fp32 rounding of O(1) terms, not to 0
    assert_close(loss, expected, rtol, atol, scale=max(expected.abs().max().item(), 1.0))
    grad_output = torch.rand_like(expected) + 0.5
    (grad,) = torch.autograd.grad(loss, student, grad_output.to(loss.dtype))
    (grad64,) = torch.autograd.grad(expected, s64, grad_output)
    assert grad.dtype == student.dtype
    assert_close(grad, grad64, rtol, atol)


@pytest.mark.parametrize("dtype,rtol,atol", TOLERANCES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_mode", LABEL_MODES)
def test_matches_reference(label_mode, reduction, dtype, rtol, atol):
    student, teacher, labels, hard_weight = _inputs((6, 37), dtype, label_mode)
    _check(student, teacher, 2.0, reduction, labels, hard_weight, rtol, atol)


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0, 4.0, 20.0])
def test_temperatures(temperature):
    student, teacher, labels, hard_weight = _inputs((5, 23), torch.float32, "hard")
    _check(student, teacher, temperature, "batchmean", labels, hard_weight, 2e-5, 2e-5)


@pytest.mark.parametrize("shape", [(4, 1), (3, 7), (2, 3, 11), (13,)])
def test_shapes(shape):
    for mode in ("no_labels", "hard"):
        student, teacher, labels, hard_weight = _inputs(shape, torch.float32, mode)
        for reduction in ("batchmean", "none"):
            _check(student, teacher, 1.5, reduction, labels, hard_weight, 2e-5, 2e-5)


@pytest.mark.parametrize("dtype,rtol,atol", [TOLERANCES[0], TOLERANCES[2]])
def test_streaming_path(dtype, rtol, atol):
    if not backend.interpreter_enabled():
        pytest.skip("the one-pass limit asserted here is the interpreter's")
    assert softmax_kernels.plan(3, 65, limits=kd_kernels.kd_limits(), allow_split=False).path \
        == "stream"
    student, teacher, labels, hard_weight = _inputs((3, 65), dtype, "hard")
    _check(student, teacher, 3.0, "mean", labels, hard_weight, rtol, atol)


def test_matches_torch_formula():
    """The 2-D definitions are torch's: kl_div(log_softmax, log_softmax, log_target) · T²,
    plus cross_entropy for the hard term."""
    s, t = torch.randn(6, 19) * 2, torch.randn(6, 19) * 2
    T = 4.0
    log_p_s, log_p_t = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    for reduction in ("batchmean", "sum", "mean"):
        expected = F.kl_div(log_p_s, log_p_t, reduction=reduction, log_target=True) * T * T
        torch.testing.assert_close(ff.kd_loss(s, t, T, reduction), expected)
    expected = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(-1) * T * T
    torch.testing.assert_close(ff.kd_loss(s, t, T, "none"), expected)
    labels = torch.randint(0, 19, (6,))
    labels[2] = -100
    keep = labels != -100
    kl = F.kl_div(log_p_s[keep], log_p_t[keep], reduction="batchmean", log_target=True) * T * T
    ce = F.cross_entropy(s, labels)
    torch.testing.assert_close(ff.kd_loss(s, t, T, labels=labels, hard_weight=0.25),
                               0.25 * ce + 0.75 * kl)


def test_masked_and_huge_logits():
    student, teacher, labels, _ = _inputs((4, 20), torch.float32, "labels")
    student[:, ::4] = float("-inf")           # masked classes in both models
    teacher[:, ::4] = float("-inf")
    teacher[:, 1] = float("-inf")             # the teacher alone masks a class: fine
    labels[:] = 2
    _check(student, teacher, 2.0, "batchmean", labels, 0.4, 2e-5, 2e-5)
    loss = ff.kd_loss(student, teacher, 2.0, labels=labels, hard_weight=0.4)
    assert torch.isfinite(loss)
    big_s, big_t = torch.randn(3, 30) * 1e4, torch.randn(3, 30) * 1e4
    _check(big_s, big_t, 1.0, "sum", None, 0.0, 2e-5, 2e-5)


def test_all_rows_ignored_gives_nan_like_torch():
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    labels = torch.full((3,), -100)
    assert ff.kd_loss(s, t, 2.0, labels=labels).isnan()
    assert F.cross_entropy(s, labels).isnan()
    assert ff.kd_loss(s, t, 2.0, "sum", labels=labels) == 0


def test_empty():
    for shape in [(0, 5), (2, 0, 5)]:
        s = torch.randn(shape, requires_grad=True)
        loss = ff.kd_loss(s, torch.randn(shape), 2.0, "sum")
        assert loss == 0
        loss.backward()
        assert s.grad.shape == s.shape
    assert ff.kd_loss(torch.randn(0, 5), torch.randn(0, 5), 2.0, "none").shape == (0,)


def test_gradcheck_float64():
    s = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 8, dtype=torch.float64)
    labels = torch.tensor([1, -100, 7])
    for reduction in ("batchmean", "none"):
        assert torch.autograd.gradcheck(
            lambda x: ff.kd_loss(x, t, 1.7, reduction, labels=labels, hard_weight=0.3), (s,))


def test_opcheck():
    s, t = torch.randn(4, 9), torch.randn(4, 9)
    labels = torch.tensor([0, 8, -100, 3])
    torch.library.opcheck(ops.kd_loss_fwd, (s, t, None, 2.0, 0.0, -100, "batchmean", False))
    torch.library.opcheck(ops.kd_loss_fwd, (s.requires_grad_(), t, labels, 2.0, 0.5, -100,
                                            "mean", True))
    _, grad = ops.kd_loss_fwd(s.detach(), t, labels, 2.0, 0.5, -100, "none", True)
    torch.library.opcheck(ops.kd_loss_bwd, (torch.rand(4), grad))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    s = torch.randn(5, 12, requires_grad=True)
    t = torch.randn(5, 12)
    labels = torch.tensor([1, 2, -100, 4, 5])

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(student, teacher, labels):
        return ff.kd_loss(student, teacher, 3.0, labels=labels, hard_weight=0.5)

    loss = f(s, t, labels)
    loss.backward()
    s64 = s.detach().double().requires_grad_()
    expected = reference.kd_loss(s64, t.double(), 3.0, "batchmean", -100, labels, 0.5)
    expected.backward()
    assert_close(loss, expected, 2e-5, 2e-5)
    assert_close(s.grad, s64.grad, 2e-5, 2e-5)


def test_saves_one_gradient_in_student_dtype():
    """The KD path keeps exactly one [rows, V] tensor for backward: the gradient, in the
    student's dtype (bf16 here), and no fp32 [rows, V] temporary."""
    s = torch.randn(2, 3, 16, dtype=torch.bfloat16, requires_grad=True)
    t = torch.randn(2, 3, 16, dtype=torch.bfloat16)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda x: saved.append(x) or x, lambda x: x):
        loss = ff.kd_loss(s, t, 2.0)
    big = [x for x in saved if x.numel() >= 6 * 16]
    assert len(big) == 1 and big[0].shape == (6, 16) and big[0].dtype == torch.bfloat16
    loss.backward()
    assert s.grad.dtype == torch.bfloat16


def test_no_gradient_written_without_grad(monkeypatch):
    seen = []
    original = kd_kernels.kd_loss_forward
    monkeypatch.setattr(kd_kernels, "kd_loss_forward",
                        lambda *a, **k: seen.append(a[7]) or original(*a, **k))
    s, t = torch.randn(3, 6), torch.randn(3, 6)
    ff.kd_loss(s, t)
    ff.kd_loss(s.requires_grad_(), t)
    with torch.no_grad():
        ff.kd_loss(s, t)
    if backend.active(s) == "torch":
        pytest.skip("the kernel launcher only runs on the Triton paths")
    assert seen == [False, True, False]


def test_teacher_gets_no_gradient():
    s = torch.randn(3, 6, requires_grad=True)
    t = torch.randn(3, 6, requires_grad=True)
    ff.kd_loss(s, t, 2.0).backward()
    assert s.grad is not None and t.grad is None


def test_torch_path_matches_reference():
    with backend.force("torch"):
        for dtype, rtol, atol in TOLERANCES:
            for reduction in REDUCTIONS:
                student, teacher, labels, hard_weight = _inputs((2, 3, 150), dtype, "hard")
                _check(student, teacher, 2.5, reduction, labels, hard_weight, rtol, atol)


def test_triton_path_runs(monkeypatch):
    if not backend.interpreter_enabled():
        pytest.skip("checks the interpreter path; on a GPU the compiled path is the default")
    calls = []
    for name in ("kd_loss_forward", "kd_loss_backward"):
        original = getattr(kd_kernels, name)
        monkeypatch.setattr(kd_kernels, name,
                            lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    s = torch.randn(3, 10, requires_grad=True)
    assert backend.active(s) == "interpret"
    ff.kd_loss(s, torch.randn(3, 10), 2.0).backward()
    assert calls == ["kd_loss_forward", "kd_loss_backward"]


def test_module():
    criterion = fnn.KDLoss(temperature=4.0, reduction="sum", hard_weight=0.2)
    student, teacher, labels, _ = _inputs((5, 9), torch.float32, "labels")
    expected = reference.kd_loss(student.double(), teacher.double(), 4.0, "sum", -100, labels,
                                 0.2)
    assert_close(criterion(student, teacher, labels), expected, 2e-5, 2e-5)
    assert "temperature=4.0" in repr(criterion)
    with pytest.raises(ValueError, match="reduction"):
        fnn.KDLoss(reduction="avg")


def test_bad_inputs():
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    for temperature in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a positive finite number"):
            ff.kd_loss(s, t, temperature)
    with pytest.raises(ValueError, match="same shape"):
        ff.kd_loss(s, torch.randn(3, 6))
    with pytest.raises(TypeError, match="share one dtype"):
        ff.kd_loss(s, t.double())
    with pytest.raises(TypeError, match="student_logits must be a floating tensor"):
        ff.kd_loss(torch.ones(3, 5, dtype=torch.int64), t)
    with pytest.raises(ValueError, match="reduction must be one of"):
        ff.kd_loss(s, t, reduction="avg")
    with pytest.raises(TypeError, match="labels must be an int64 or int32"):
        ff.kd_loss(s, t, labels=torch.zeros(3))
    with pytest.raises(ValueError, match="labels must have the logits' leading shape"):
        ff.kd_loss(s, t, labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be in"):
        ff.kd_loss(s, t, labels=torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match="needs labels"):
        ff.kd_loss(s, t, hard_weight=0.5)
    with pytest.raises(ValueError, match="hard_weight must be in"):
        ff.kd_loss(s, t, labels=torch.zeros(3, dtype=torch.long), hard_weight=1.5)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ff.kd_loss(torch.tensor(1.0), torch.tensor(1.0))
