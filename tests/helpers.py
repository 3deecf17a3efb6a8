"""Shared test utilities: the device, tolerances per dtype, ONE closeness assertion, and
output poisoning (used through the ``poison`` fixture of conftest.py)."""
import torch

#: Where the tests run: the compiled kernels on a GPU, else the interpreter on the CPU
#: (conftest.py sets TRITON_INTERPRET=1 when there is no GPU).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (rtol, atol) of linear_act against the float64 reference, for values of order 1 (the
# tests scale inputs so that z = x W^T + b has unit variance; atol multiplies the tensor's
# scale, see `assert_close`). Why these numbers:
# - float32: fp32 accumulation over K <= ~100 terms errs by ~K·2^-24 ≈ 6e-6 relative. On a
#   GPU fp32 matmuls use TF32 only if torch.backends.cuda.matmul.allow_tf32 is on (off by
#   default, and the kernels follow it), so the same bound holds there.
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


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol, *, scale=None,
                 what: str = "value") -> None:
    """Elementwise ``|actual - expected| <= atol·scale + rtol·|expected|``, ``tol = (rtol,
    atol)``, with the same shape and NaN / ±inf at exactly the same places (so a poisoned,
    unwritten element fails here).

    ``scale`` defaults to max|expected| over its finite elements: ``atol`` is relative to
    the tensor's magnitude, so one tolerance serves softmax probabilities, log-probabilities
    and gradients scaled by 1/T. Pass ``scale`` where the magnitude that sets the rounding
    error is another one (e.g. the incoming gradient's).
    """
    rtol, atol = tol
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != " \
                                           f"{tuple(expected.shape)}"
    actual = actual.detach().double().cpu()
    expected = expected.detach().double().cpu()
    nan = torch.isnan(expected)
    assert torch.equal(torch.isnan(actual), nan), \
        f"{what}: NaN at {torch.isnan(actual).sum().item()} places, expected {nan.sum().item()}"
    finite = torch.isfinite(expected)
    inf = ~finite & ~nan
    assert torch.equal(actual[inf], expected[inf]), f"{what}: ±inf pattern differs"
    assert torch.isfinite(actual[finite]).all(), f"{what}: non-finite where expected is finite"
    got, want = actual[finite], expected[finite]
    if want.numel() == 0:
        return
    if scale is None:
        scale = want.abs().max().clamp_min(1e-30).item()
    scale = float(scale)
    bound = atol * scale + rtol * want.abs()
    excess = (got - want).abs() - bound
    worst = int(excess.argmax())
    assert excess[worst].item() <= 0, (
        f"{what}: |diff| {(got - want).abs()[worst].item():.3e} at {got[worst].item():.6e} vs "
        f"{want[worst].item():.6e} over tolerance (rtol={rtol}, atol={atol}·{scale:.3e}); "
        f"{int((excess > 0).sum())} of {want.numel()} elements fail")


def _nan_filled(factory):
    def allocate(*args, **kwargs):
        out = factory(*args, **kwargs)
        if out.is_floating_point() or out.is_complex():
            out.fill_(float("nan"))
        return out
    return allocate


def poison_allocations(monkeypatch) -> None:
    """Make every floating ``torch.empty`` / ``torch.empty_like`` NaN-filled until the test
    ends: every launcher allocates its outputs through them, so an element a kernel forgets
    to write shows up as NaN instead of passing by luck."""
    monkeypatch.setattr(torch, "empty", _nan_filled(torch.empty))
    monkeypatch.setattr(torch, "empty_like", _nan_filled(torch.empty_like))
