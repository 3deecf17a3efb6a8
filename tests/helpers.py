"""Shared test utilities: tolerances per dtype and output poisoning."""
import torch

# (rtol, atol) against the float64 reference, for values of order 1 (the tests scale
# inputs so that z = x W^T + b has unit variance; atol is applied to max|expected|-scaled
# errors by `assert_close_scaled`). Why these numbers:
# - float32: fp32 accumulation over K <= ~100 terms errs by ~K·2^-24 ≈ 6e-6 relative.
# - float16: the output is rounded to fp16 (2^-11 ≈ 4.9e-4 relative); gradients pass through
#   a dZ rounded to fp16 and a second fp32-accumulated matmul, so allow a few ulps more.
# - bfloat16: 8 mantissa bits (2^-8 ≈ 3.9e-3), and the interpreter's fp32->bf16 cast
#   truncates instead of rounding (up to 2^-7 ≈ 7.8e-3); gradients take two such roundings.
# - float64: fp64 accumulation, ~1e-15; 1e-10 leaves room for the fp32 `param` scalar.
FORWARD_TOL = {
    torch.float32: (1e-4, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
    torch.float64: (1e-10, 1e-10),
}
GRAD_TOL = {
    torch.float32: (1e-4, 1e-5),
    torch.float16: (5e-3, 5e-3),
    torch.bfloat16: (4e-2, 4e-2),
    torch.float64: (1e-10, 1e-10),
}


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, tol, what: str) -> None:
    """|actual - expected| <= atol·max|expected| + rtol·|expected|, elementwise, with no NaN
    where the reference has none (a poisoned, unwritten element fails here)."""
    rtol, atol = tol
    actual = actual.double()
    expected = expected.double()
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = expected.abs().max().item() if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * max(scale, 1.0),
                               equal_nan=True, msg=lambda m: f"{what}: {m}")


def poisoned_empty(shape, dtype, device):
    """A stand-in for a launcher's output allocation: NaN everywhere until written."""
    return torch.full(shape, float("nan"), dtype=dtype, device=device)
