"""The fused distillation loss against the formula users write,
``F.kl_div(F.log_softmax(s / T), F.log_softmax(t / T), log_target=True) * T**2``, its
torch.compile, and Liger-Kernel's KL divergence (on eager log-softmaxes) when importable.

Roofline (kernels/kd_loss.py): forward + backward reads the student and teacher logits and
writes the student gradient: 3·M·V·itemsize bytes; compared with the copy bandwidth.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

import fusedact
from benchmarks import common
from benchmarks.common import Case, CompileBudget, saved_bytes

GPU_SHAPES = [(4096, 32000), (4096, 128256)]
CPU_QUICK = [(64, 32000)]
CPU_FULL = CPU_QUICK + [(64, 128256)]
TEMPERATURE = 4.0


def _eager(s, t):
    return F.kl_div(F.log_softmax(s / TEMPERATURE, -1), F.log_softmax(t / TEMPERATURE, -1),
                    reduction="batchmean", log_target=True) * TEMPERATURE ** 2


def _fused(s, t):
    return fusedact.kd_loss(s, t, temperature=TEMPERATURE)


def _liger():
    try:
        from liger_kernel.transformers.functional import liger_kl_div
    except Exception as error:
        return f"Liger-Kernel KL divergence not importable ({type(error).__name__})"
    return lambda s, t: liger_kl_div(F.log_softmax(s / TEMPERATURE, -1),
                                     F.log_softmax(t / TEMPERATURE, -1), "batchmean",
                                     True) * TEMPERATURE ** 2


def cases(quick: bool, on_gpu: bool, dtypes) -> Iterator[Case]:
    device = "cuda" if on_gpu else "cpu"
    compile_budget = CompileBudget()
    shapes = GPU_SHAPES if on_gpu else (CPU_QUICK if quick else CPU_FULL)
    liger = _liger()
    for dtype in dtypes:
        for M, V in shapes:
            student = (torch.randn(M, V, device=device, dtype=dtype) * 3).requires_grad_()
            teacher = torch.randn(M, V, device=device, dtype=dtype) * 3
            funcs = {"fusedact": _fused, "eager": _eager}
            if compile_budget.allows(on_gpu, quick):
                funcs["torch.compile"] = torch.compile(_eager)
            skipped = {} if "torch.compile" in funcs else {
                "torch.compile": common.COMPILE_SKIPPED}
            if isinstance(liger, str):
                skipped["liger"] = liger
            else:
                funcs["liger"] = liger
            providers, extra = {}, {}
            for name, f in funcs.items():
                providers[name] = (lambda f=f, s=student, t=teacher:
                                   torch.autograd.grad(f(s, t), s))
                extra[name] = {"saved_bytes": saved_bytes(lambda f=f, s=student, t=teacher: f(s, t))}
            yield Case("kd_loss", "forward+backward", f"M={M} V={V} T={TEMPERATURE}", dtype,
                       {**providers, **skipped}, bytes=3 * M * V * student.element_size(),
                       extra=extra)
