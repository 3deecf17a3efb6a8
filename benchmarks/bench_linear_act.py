"""Fused linear + activation against eager ``act(F.linear(x, W, b))`` and its torch.compile.

Roofline (kernels/linear_act.py): forward 2·M·N·K FLOPs, forward+backward 6·M·N·K; both
compared with a large matmul's rate measured in the same run. Also reported: the bytes each
provider keeps for backward (saved-tensor hooks).
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

import fusedact
from fusedact import reference
from benchmarks import common
from benchmarks.common import Case, CompileBudget, saved_bytes

# (tokens M, in K, out N): MLP shapes (up and down projections, 4x expansion) and wide
# shapes with small K where activation traffic dominates.
GPU_QUICK = [(4096, 1024, 4096), (4096, 4096, 1024), (8192, 256, 8192)]
GPU_FULL = [(m, h, 4 * h) for m in (1024, 4096, 16384) for h in (512, 1024, 2048, 4096, 8192)] + \
           [(m, 4 * h, h) for m in (4096, 16384) for h in (1024, 4096)] + \
           [(8192, k, 8192) for k in (64, 128, 256, 512)]
CPU_QUICK = [(512, 256, 1024), (512, 1024, 256)]
CPU_FULL = CPU_QUICK + [(2048, 512, 2048), (2048, 64, 4096)]
ACTIVATIONS_QUICK = ["gelu", "relu", "leaky_relu"]


def _eager(activation):
    def run(x, w, b):
        return reference.activation(F.linear(x, w, b), activation,
                                    0.01 if activation == "leaky_relu" else 0.0)
    return run


def _fused(activation):
    def run(x, w, b):
        return fusedact.linear_act(x, w, b, activation)
    return run


def cases(quick: bool, on_gpu: bool, dtypes) -> Iterator[Case]:
    """Yields one case at a time, so only one shape's tensors are alive at once."""
    device = "cuda" if on_gpu else "cpu"
    compile_budget = CompileBudget()
    shapes = (GPU_QUICK if quick else GPU_FULL) if on_gpu else (CPU_QUICK if quick else CPU_FULL)
    activations = ACTIVATIONS_QUICK if quick else list(fusedact.ACTIVATIONS)
    for dtype in dtypes:
        for M, K, N in shapes:
            for activation in activations:
                x = torch.randn(M, K, device=device, dtype=dtype)
                w = torch.randn(N, K, device=device, dtype=dtype) / K ** 0.5
                b = torch.randn(N, device=device, dtype=dtype)
                funcs = {"fusedact": _fused(activation), "eager": _eager(activation)}
                if compile_budget.allows(on_gpu, quick):
                    funcs["torch.compile"] = torch.compile(_eager(activation))
                providers = {name: (lambda f=f, x=x, w=w, b=b: f(x, w, b))
                             for name, f in funcs.items()}
                if "torch.compile" not in funcs:
                    providers["torch.compile"] = common.COMPILE_SKIPPED
                shape = f"M={M} K={K} N={N} {activation}"
                with torch.no_grad():
                    yield Case("linear_act", "forward", shape, dtype,
                               _no_grad(providers), flops=2 * M * N * K,
                               bytes=(M * K + N * K + M * N + N) * x.element_size(),
                               bound="compute")
                xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
                dy = torch.randn(M, N, device=device, dtype=dtype)
                training = {}
                extra = {}
                for name, f in funcs.items():
                    training[name] = (lambda f=f, xg=xg, wg=wg, bg=bg, dy=dy:
                                      torch.autograd.grad(f(xg, wg, bg), (xg, wg, bg), dy))
                    extra[name] = {"saved_bytes": saved_bytes(lambda f=f: f(xg, wg, bg), (wg, bg))}
                if "torch.compile" not in funcs:
                    training["torch.compile"] = providers["torch.compile"]
                yield Case("linear_act", "forward+backward", shape, dtype, training,
                           flops=6 * M * N * K, bound="compute", extra=extra)


def _no_grad(providers: dict) -> dict:
    def wrap(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run
    return {k: (v if isinstance(v, str) else wrap(v)) for k, v in providers.items()}
