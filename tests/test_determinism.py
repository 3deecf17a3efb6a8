"""Bitwise determinism: the same inputs give the same bits, run after run, for outputs and
gradients; and a row's result does not depend on the other rows of the batch wherever the
math allows it.

Which ops are bitwise deterministic (README "Guarantees"): all of them, run to run, on one
device with one launch config. No kernel uses atomics; every reduction (the row statistics,
the split-row merge, db = Σ_rows dZ, the KD reduction over row losses) runs in a fixed
order. Batch invariance: softmax / log_softmax rows, kd_loss per-row losses and gradients,
and linear_act output rows (under the interpreter: rows that keep their place in a 64-row
tile, see the test) are the same bits whatever the other rows are, as long as the launch is
the same: on a GPU the autotuner may pick another matmul config for another batch
bucket (different block sizes sum K in another order), and a softmax row wider than the
one-pass limit may be split across programs when there are few rows; the tests below pin
those. Gradients that sum over rows (dW, db) depend on the batch by definition.
"""
import pytest
import torch

import fusedact
from fusedact import backend
from fusedact import functional as ff
from fusedact.kernels import linear_act as linear_act_kernels
from fusedact.kernels import softmax as softmax_kernels
from helpers import DEVICE

pytestmark = pytest.mark.usefixtures("poison")


def _twice(fn):
    """fn() run twice: a list of (first, second) tensor pairs."""
    first = [t.detach().clone() for t in fn()]
    second = [t.detach().clone() for t in fn()]
    return list(zip(first, second))


# Row widths: one pass, and one that streams (or splits) rows on the active device.
WIDE = softmax_kernels.default_limits().max_block * 2 + 3


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("path,shape", [("one_pass", (33, 37)), ("split", (3, WIDE)),
                                        ("stream", (9, WIDE) if DEVICE == "cpu" else (600, WIDE))])
def test_softmax_run_to_run(path, shape, log):
    assert softmax_kernels.plan(*shape, device=DEVICE).path == path
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    dy = torch.randn(shape, device=DEVICE)
    fn = ff.log_softmax if log else ff.softmax

    def run():
        y = fn(x, 0.7)
        return [y, *torch.autograd.grad(y, x, dy)]

    for first, second in _twice(run):
        assert torch.equal(first, second)


def test_kd_loss_run_to_run():
    width = softmax_kernels.default_limits().max_block + 5   # the streaming path
    for shape in [(9, 23), (5, width)]:
        s = torch.randn(shape, device=DEVICE, requires_grad=True)
        t = torch.randn(shape, device=DEVICE)
        labels = torch.randint(0, shape[1], (shape[0],), device=DEVICE)

        def run():
            loss = ff.kd_loss(s, t, 2.0, "batchmean", labels=labels, hard_weight=0.3)
            return [loss, *torch.autograd.grad(loss, s)]

        for first, second in _twice(run):
            assert torch.equal(first, second)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_linear_act_run_to_run(dtype):
    x = torch.randn(70, 45, device=DEVICE).to(dtype).requires_grad_()
    w = torch.randn(66, 45, device=DEVICE).to(dtype).requires_grad_()
    b = torch.randn(66, device=DEVICE).to(dtype).requires_grad_()
    dy = torch.randn(70, 66, device=DEVICE).to(dtype)

    def run():
        y = fusedact.linear_act(x, w, b, "gelu")
        return [y, *torch.autograd.grad(y, (x, w, b), dy)]

    for first, second in _twice(run):
        assert torch.equal(first, second)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_rows_do_not_depend_on_the_batch(log):
    n = softmax_kernels.default_limits().max_block - 3  # one pass: no split to choose
    x = torch.randn(50, n, device=DEVICE, requires_grad=True)
    dy = torch.randn(50, n, device=DEVICE)
    fn = ff.log_softmax if log else ff.softmax
    y = fn(x, 0.3)
    (dx,) = torch.autograd.grad(y, x, dy)
    for rows in (slice(0, 1), slice(7, 20), slice(49, 50)):
        part = x.detach()[rows].clone().requires_grad_()
        y_part = fn(part, 0.3)
        (dx_part,) = torch.autograd.grad(y_part, part, dy[rows])
        assert torch.equal(y_part, y[rows]) and torch.equal(dx_part, dx[rows])
    # other rows' values (here: huge and -inf rows) change nothing either
    noisy = x.detach().clone()
    noisy[1::2] = torch.where(torch.rand_like(noisy[1::2]) < 0.5, 1e30, float("-inf"))
    assert torch.equal(fn(noisy, 0.3)[::2], y[::2])


def test_kd_loss_rows_do_not_depend_on_the_batch():
    s = torch.randn(30, 41, device=DEVICE, requires_grad=True)
    t = torch.randn(30, 41, device=DEVICE)
    loss = ff.kd_loss(s, t, 3.0, "none")
    (grad,) = torch.autograd.grad(loss.sum(), s)
    for rows in (slice(0, 1), slice(5, 18)):
        part = s.detach()[rows].clone().requires_grad_()
        loss_part = ff.kd_loss(part, t[rows], 3.0, "none")
        (grad_part,) = torch.autograd.grad(loss_part.sum(), part)
        assert torch.equal(loss_part, loss[rows]) and torch.equal(grad_part, grad[rows])


def test_linear_act_rows_do_not_depend_on_the_batch(monkeypatch):
    # One matmul config for every batch size (on a GPU the tuner could pick another block
    # size for another M bucket, which sums K in another order).
    config = linear_act_kernels.INTERPRETER_CONFIG
    monkeypatch.setattr(linear_act_kernels.FORWARD_TUNER, "choose", lambda *a, **k: config)
    block_m = config.meta()["BLOCK_M"]
    x = torch.randn(2 * block_m + 2, 70, device=DEVICE)
    w = torch.randn(67, 70, device=DEVICE)
    b = torch.randn(67, device=DEVICE)
    y = fusedact.linear_act(x, w, b, "silu")
    # Slices that keep each row at its place in its 64-row tile. Under the interpreter that
    # is needed: tl.dot is numpy's matmul, whose BLAS computes a tile's edge rows with other
    # instructions (a row moved from place 63 to 0 changed by 3e-6). On a GPU a row's MMA
    # sum does not depend on its place, so shifted slices are checked too.
    slices = [slice(0, 1), slice(block_m, 2 * block_m), slice(2 * block_m, 2 * block_m + 2)]
    if not backend.interpreter_enabled():
        slices += [slice(block_m - 1, block_m + 2), slice(5, 2 * block_m + 1)]
    for rows in slices:
        assert torch.equal(fusedact.linear_act(x[rows].clone(), w, b, "silu"), y[rows]), rows
