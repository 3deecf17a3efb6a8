"""``python -m fusedact check``: run every op on this machine against a float64 reference.

Small ragged shapes, forward and backward, each dtype the device runs; prints one table row
per (op, dtype) with the worst scaled error and PASS/FAIL; exits 1 if any row fails. It
checks the path ops take here (``fusedact.backend.active``): compiled Triton on a GPU, the
Triton interpreter when TRITON_INTERPRET=1 was set before import, else plain torch.
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence

import torch

# Worst |error| / max(1, max|reference|) allowed, forward and gradients. fp32 accumulates
# ~K·2^-24; fp16 rounds outputs to 2^-11 and gradients pass two roundings; bf16 has 8
# mantissa bits (2^-8) and the interpreter truncates on the cast; TF32 on a GPU (10 bits)
# is covered by the fp32 bound with room to spare at K = 37.
TOLERANCE = {torch.float32: 2e-3, torch.float16: 1e-2, torch.bfloat16: 6e-2}


def _error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.double(), expected.double()
    if actual.shape != expected.shape:
        return float("inf")
    if expected.numel() == 0:
        return 0.0
    diff = (actual - expected).abs()
    if torch.isnan(diff).any():
        return float("nan")
    return (diff.max() / max(1.0, expected.abs().max().item())).item()


def _check_linear_act(name: str, dtype: torch.dtype, device: str) -> float:
    import fusedact
    from fusedact import reference

    kwargs = {"leaky_relu": {"negative_slope": 0.1}, "elu": {"alpha": 0.7}}.get(name, {})
    param = next(iter(kwargs.values()), 0.0)
    M, K, N = 19, 37, 23
    x = torch.randn(M, K, device=device) / K ** 0.5
    w = torch.randn(N, K, device=device)
    b = torch.randn(N, device=device)
    grad = torch.randn(M, N, device=device)
    xs, ws, bs = (t.to(dtype).requires_grad_() for t in (x, w, b))
    y = fusedact.linear_act(xs, ws, bs, name, **kwargs)
    y.backward(grad.to(dtype))
    expected = reference.linear_act(xs, ws, bs, name, param)
    expected_grads = reference.linear_act_backward(grad.to(dtype), xs, ws, bs, name, param)
    return max(_error(a, e) for a, e in zip((y, xs.grad, ws.grad, bs.grad),
                                            (expected, *expected_grads)))


def _check_softmax(log: bool, dtype: torch.dtype, device: str) -> float:
    import fusedact

    fn = fusedact.log_softmax if log else fusedact.softmax
    worst = 0.0
    for temperature, width in ((0.5, 7), (2.0, 300)):
        x = (torch.randn(5, width, device=device) * 3).to(dtype).requires_grad_()
        grad = torch.randn(5, width, device=device).to(dtype)
        y = fn(x, temperature=temperature)
        y.backward(grad)
        x64 = x.detach().double().requires_grad_()
        ref_fn = torch.log_softmax if log else torch.softmax
        expected = ref_fn(x64 / temperature, -1)
        (expected_grad,) = torch.autograd.grad(expected, x64, grad.double())
        worst = max(worst, _error(y, expected), _error(x.grad, expected_grad))
    return worst


def _check_kd_loss(dtype: torch.dtype, device: str) -> float:
    import fusedact

    worst = 0.0
    for temperature, width in ((1.0, 11), (4.0, 260)):
        student = torch.randn(6, width, device=device).to(dtype).requires_grad_()
        teacher = torch.randn(6, width, device=device).to(dtype)
        loss = fusedact.kd_loss(student, teacher, temperature=temperature)
        loss.backward()
        s64 = student.detach().double().requires_grad_()
        expected = torch.nn.functional.kl_div(
            torch.log_softmax(s64 / temperature, -1),
            torch.log_softmax(teacher.double() / temperature, -1),
            reduction="batchmean", log_target=True) * temperature ** 2
        (expected_grad,) = torch.autograd.grad(expected, s64)
        worst = max(worst, _error(loss, expected), _error(student.grad, expected_grad))
    return worst


def checks() -> list[tuple[str, Callable[[torch.dtype, str], float]]]:
    """(op label, check(dtype, device) -> worst scaled error) for every op in this build."""
    import fusedact

    found = [(f"linear_act[{name}]", lambda d, dev, name=name: _check_linear_act(name, d, dev))
             for name in fusedact.ACTIVATIONS]
    if hasattr(fusedact, "softmax"):
        found.append(("softmax", lambda d, dev: _check_softmax(False, d, dev)))
    if hasattr(fusedact, "log_softmax"):
        found.append(("log_softmax", lambda d, dev: _check_softmax(True, d, dev)))
    if hasattr(fusedact, "kd_loss"):
        found.append(("kd_loss", _check_kd_loss))
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    import fusedact

    parser = argparse.ArgumentParser(prog="python -m fusedact check",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--dtype", action="append", choices=["float32", "float16", "bfloat16"],
                        help="dtypes to check (repeatable; default: all three)")
    parser.add_argument("--op", action="append", help="only ops whose label contains this")
    args = parser.parse_args(list(argv or []))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtypes = [getattr(torch, d) for d in (args.dtype or ["float32", "float16", "bfloat16"])]
    selected = [(label, fn) for label, fn in checks()
                if not args.op or any(part in label for part in args.op)]
    path = fusedact.backend.active(torch.empty(0, device=device))
    print(f"fusedact {fusedact.__version__} check on {device} ({path!r} path), "
          f"forward + backward vs float64")
    print(f"{'op':<24} {'dtype':<9} {'max error':>10} {'limit':>8}  result")
    failed = 0
    torch.manual_seed(0)
    for label, fn in selected:
        for dtype in dtypes:
            try:
                error, note = fn(dtype, device), ""
            except Exception as exc:  # a crash is a failure, reported, not a traceback
                error, note = float("nan"), f"  {type(exc).__name__}: {exc}"
            ok = error <= TOLERANCE[dtype]  # NaN compares False: a NaN fails
            failed += not ok
            print(f"{label:<24} {str(dtype).replace('torch.', ''):<9} {error:>10.2e} "
                  f"{TOLERANCE[dtype]:>8.0e}  {'PASS' if ok else 'FAIL'}{note}")
    total = len(selected) * len(dtypes)
    print(f"{total - failed}/{total} passed")
    return 1 if failed else 0
