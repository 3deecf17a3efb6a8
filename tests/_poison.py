"""Shared by the softmax / KD tests: make every float ``torch.empty`` NaN-filled, so an
element a kernel forgets to write shows up as NaN instead of passing by luck."""
import torch

_EMPTY = torch.empty
_EMPTY_LIKE = torch.empty_like


def _poisoned_empty(*args, **kwargs):
    out = _EMPTY(*args, **kwargs)
    if out.is_floating_point():
        out.fill_(float("nan"))
    return out


def _poisoned_empty_like(*args, **kwargs):
    out = _EMPTY_LIKE(*args, **kwargs)
    if out.is_floating_point():
        out.fill_(float("nan"))
    return out


def poison(monkeypatch) -> None:
    monkeypatch.setattr(torch, "empty", _poisoned_empty)
    monkeypatch.setattr(torch, "empty_like", _poisoned_empty_like)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float,
                 scale=None) -> None:
    """|actual - expected| <= atol · max|expected| + rtol · |expected|, elementwise, with NaN
    and ±inf required at the same places. ``atol`` is relative to the tensor's scale, so one
    tolerance serves temperatures from 0.05 (gradients ~20x) to 20."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    actual = actual.detach().double().cpu()
    expected = expected.detach().double().cpu()
    assert torch.equal(torch.isnan(actual), torch.isnan(expected)), "NaN pattern differs"
    finite = torch.isfinite(expected)
    assert torch.equal(actual[~finite & ~torch.isnan(expected)],
                       expected[~finite & ~torch.isnan(expected)]), "inf pattern differs"
    a, e = actual[finite], expected[finite]
    if e.numel() == 0:
        return
    scale = e.abs().max().clamp_min(1e-30) if scale is None else torch.as_tensor(float(scale))
    bound = atol * scale + rtol * e.abs()
    worst = ((a - e).abs() - bound).max().item()
    assert worst <= 0, (f"max |diff| {(a - e).abs().max().item():.3e} over tolerance "
                        f"(rtol={rtol}, atol={atol}·{scale.item():.3e})")
