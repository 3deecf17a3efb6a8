"""Which path runs: the interpreter really runs the Triton code; the torch path is right too."""
import subprocess
import sys

import pytest
import torch

import fusedact
from fusedact import backend, ops, reference
from fusedact.activations import resolve
from fusedact.kernels import linear_act as linear_act_kernels
from helpers import FORWARD_TOL, GRAD_TOL, assert_close_scaled

LAUNCHERS = ["linear_act_forward", "act_grad", "matmul_rowsum"]


def _spy(monkeypatch, calls, fail=False):
    for name in LAUNCHERS:
        original = getattr(linear_act_kernels, name)

        def wrapper(*args, _name=name, _original=original, **kwargs):
            if fail:
                raise AssertionError(f"the Triton launcher {_name} ran on the torch path")
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(linear_act_kernels, name, wrapper)


def _run(name, dtype, device):
    x = torch.randn(9, 20, device=device).to(dtype).requires_grad_()
    w = (torch.randn(13, 20, device=device) / 20 ** 0.5).to(dtype).requires_grad_()
    b = torch.randn(13, device=device).to(dtype).requires_grad_()
    y = fusedact.linear_act(x, w, b, name)
    dy = torch.randn_like(y)
    y.backward(dy)
    _, param = resolve(name)  # the default slope/alpha
    assert_close_scaled(y, reference.linear_act(x, w, b, name, param), FORWARD_TOL[dtype], "y")
    expected_grads = reference.linear_act_backward(dy, x, w, b, name, param)
    for got, want in zip((x.grad, w.grad, b.grad), expected_grads):
        assert_close_scaled(got, want, GRAD_TOL[dtype], "grad")


def test_interpreter_runs_the_triton_kernels(monkeypatch, device):
    if device != "cpu" or not backend.interpreter_enabled():
        pytest.skip("needs the CPU interpreter (TRITON_INTERPRET=1, no GPU)")
    from triton.runtime.interpreter import InterpretedFunction

    assert isinstance(linear_act_kernels._linear_act_fwd_kernel, InterpretedFunction)
    assert backend.active(torch.empty(1)) == "interpret"
    calls = []
    _spy(monkeypatch, calls)
    monkeypatch.setattr(ops, "torch_path", _NoTorchPath())
    _run("gelu", torch.float32, device)
    assert calls == ["linear_act_forward", "act_grad", "matmul_rowsum", "matmul_rowsum"]


class _NoTorchPath:
    """Stands in for fusedact.torch_path inside ops: any use of it fails."""

    def __getattr__(self, name):
        raise AssertionError(f"ops used torch_path.{name}: the plain-torch path ran")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", fusedact.ACTIVATIONS)
def test_torch_path_matches_reference(name, dtype, monkeypatch, device):
    if device != "cpu":
        pytest.skip("the plain-torch path is the CPU path")
    _spy(monkeypatch, [], fail=True)
    with backend.force("torch"):
        assert backend.active(torch.empty(1)) == "torch"
        _run(name, dtype, device)


def test_force_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        with backend.force("cuda"):
            pass


def test_kernels_are_installed_only_under_fusedact(tmp_path):
    # A top-level `kernels` module would shadow the PyPI package of that name.
    code = ("import importlib.util, fusedact.kernels as k; "
            "print(importlib.util.find_spec('kernels') is None, k.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["True", "fusedact.kernels"]
