"""64-bit indexing: every kernel reads rows whose element offsets pass 2^31.

A view with a huge row stride over a tensor that is allocated but almost never touched
needs little real memory: ``torch.empty`` of 4 GiB only reserves address space (on a GPU
it is real device memory, which the GPU has), and only the few rows the test writes and
the kernels read become resident. Under the interpreter the kernels read the CPU storage in
place (no copy), so these tests run on the CPU too (~80 MB resident, measured).

Two strides: 2^24 + 1, an int32 kernel argument, so ``row * stride`` passes 2^31 only if
the kernel widens to int64 first (row 128 -> offset 2^31 + 128); and 2^31 + 3, which Triton
passes as int64 anyway.
"""
import pytest
import torch

import fusedact
from fusedact import functional as ff
from fusedact import reference
from fusedact.kernels import kd_loss as kd_kernels
from fusedact.kernels import softmax as softmax_kernels
from helpers import DEVICE, FORWARD_TOL, GRAD_TOL, assert_close

pytestmark = pytest.mark.usefixtures("poison")
_REAL_EMPTY = torch.empty      # the big buffer must not be NaN-filled: that would touch it
DTYPE = torch.float16
SOFTMAX_TOL = (3e-3, 2e-3)     # fp16 output rounding (as test_softmax.py)


class _Sparse:
    """Views with a given row stride over one barely touched buffer; view k holds its rows at
    columns [k·width, (k+1)·width) of each stride period, so views never overlap."""

    SLOTS = 4

    def __init__(self, rows: int, stride: int, width: int = 128):
        assert self.SLOTS * width <= stride
        self.rows, self.stride, self.width, self.slot = rows, stride, width, 0
        self.buffer = _REAL_EMPTY((rows - 1) * stride + self.SLOTS * width, dtype=DTYPE,
                                  device=DEVICE)

    def view(self, values: torch.Tensor) -> torch.Tensor:
        """A [rows, n] view (n <= width) holding ``values``, rows ``stride`` apart."""
        rows, n = values.shape
        assert rows <= self.rows and n <= self.width and self.slot < self.SLOTS
        view = self.buffer.as_strided((rows, n), (self.stride, 1), self.slot * self.width)
        self.slot += 1
        view.copy_(values)
        assert view.stride(0) * (rows - 1) >= 2**31
        return view


# (rows, row stride): the last row starts past 2^31 elements in both
LAYOUTS = [(129, 2**24 + 1), (2, 2**31 + 3)]
LAYOUT_IDS = ["int32_stride", "int64_stride"]


def _spy(monkeypatch, module, name, seen):
    original = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append(max(a.stride(0) for a in args if isinstance(a, torch.Tensor) and a.dim() == 2))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


@pytest.mark.parametrize("rows,stride", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax(rows, stride, log, monkeypatch):
    seen = []
    _spy(monkeypatch, softmax_kernels, "softmax_forward", seen)
    sparse = _Sparse(rows, stride)
    x = sparse.view(torch.randn(rows, 37, device=DEVICE).to(DTYPE))
    fn = ff.log_softmax if log else ff.softmax
    y = fn(x, 0.7)
    assert seen == [stride], "the kernel must read the strided view, not a copy"
    y64 = reference.softmax(x.double(), 0.7, -1, log)
    assert_close(y, y64, SOFTMAX_TOL, what="y")
    # backward with y and dy both huge-strided views (the launcher reads any strides)
    dy = sparse.view(torch.randn(rows, 37, device=DEVICE).to(DTYPE))
    dx = softmax_kernels.softmax_backward(sparse.view(y), dy, 0.7, log)
    dx64 = reference.softmax_backward(y.double(), dy.double(), 0.7, -1, log)
    assert_close(dx, dx64, SOFTMAX_TOL, scale=dy.abs().max().item() / 0.7, what="dx")


# Rows past the one-pass block: interpreted, 71 columns (streams from 8 rows on, splits
# below); compiled, > 16384 columns, streaming from 2 x SMs rows on.
MULTI_BLOCK = {"stream": (9, 71), "split": (2, 71)} if DEVICE == "cpu" else \
    {"stream": (300, 16500), "split": (2, 40000)}


@pytest.mark.parametrize("path", ["stream", "split"])
def test_softmax_multi_block_paths(path):
    rows, n = MULTI_BLOCK[path]
    sparse = _Sparse(rows, 2**31 // (rows - 1) + 1, width=n)
    assert softmax_kernels.plan(rows, n, DEVICE).path == path
    x = sparse.view(torch.randn(rows, n, device=DEVICE).to(DTYPE))
    y = ff.softmax(x, 1.3)
    assert_close(y, reference.softmax(x.double(), 1.3), SOFTMAX_TOL, what="y")
    dy = sparse.view(torch.randn(rows, n, device=DEVICE).to(DTYPE))
    dx = softmax_kernels.softmax_backward(sparse.view(y), dy, 1.3, False)
    assert_close(dx, reference.softmax_backward(y.double(), dy.double(), 1.3), SOFTMAX_TOL,
                 scale=dy.abs().max().item() / 1.3, what="dx")


@pytest.mark.parametrize("rows,stride", LAYOUTS, ids=LAYOUT_IDS)
def test_kd_loss(rows, stride, monkeypatch):
    seen = []
    _spy(monkeypatch, kd_kernels, "kd_loss_forward", seen)
    sparse = _Sparse(rows, stride)
    student = sparse.view(torch.randn(rows, 29, device=DEVICE).to(DTYPE)).requires_grad_()
    teacher = sparse.view(torch.randn(rows, 29, device=DEVICE).to(DTYPE))
    labels = torch.randint(0, 29, (rows,), device=DEVICE)
    loss = ff.kd_loss(student, teacher, 2.0, "none", labels=labels, hard_weight=0.4)
    assert seen == [stride]
    s64 = student.detach().double().requires_grad_()
    expected = reference.kd_loss(s64, teacher.double(), 2.0, "none", -100, labels, 0.4)
    assert_close(loss, expected, (3e-3, 3e-3), what="loss")   # fp16 (test_kd_loss.py)
    (grad,) = torch.autograd.grad(loss.sum(), student)
    (grad64,) = torch.autograd.grad(expected.sum(), s64)
    assert_close(grad, grad64, (3e-3, 3e-3), what="grad")


@pytest.mark.parametrize("rows,stride", LAYOUTS, ids=LAYOUT_IDS)
def test_linear_act(rows, stride):
    """x [rows, 40] and weight [rows, 40] both with huge row strides: the forward reads both,
    the backward reads W along its rows (dX = dZ W) and x along its rows (dW = dZ^T x)."""
    sparse = _Sparse(rows, stride)
    x = sparse.view(torch.randn(rows, 40, device=DEVICE).to(DTYPE)).requires_grad_()
    weight = sparse.view((torch.randn(rows, 40, device=DEVICE) / 40 ** 0.5).to(DTYPE))
    weight.requires_grad_()
    bias = torch.randn(rows, device=DEVICE).to(DTYPE).requires_grad_()
    y = fusedact.linear_act(x, weight, bias, "gelu")
    assert_close(y, reference.linear_act(x, weight, bias, "gelu"), FORWARD_TOL[DTYPE], what="y")
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, weight, bias), dy)
    for got, want, what in zip(grads, reference.linear_act_backward(dy, x, weight, bias, "gelu",
                                                                    0.0), ("dx", "dw", "db")):
        assert_close(got, want, GRAD_TOL[DTYPE], what=what)
