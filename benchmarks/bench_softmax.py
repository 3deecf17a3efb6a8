"""Temperature softmax / log-softmax against eager ``torch.softmax(x / T)``, its
torch.compile, and Liger-Kernel's softmax when importable.

Roofline (kernels/softmax.py): forward reads and writes M·N elements (2·M·N·itemsize
bytes), backward reads y and dy and writes dx (3·M·N·itemsize); compared with the copy
bandwidth measured in the same run.
"""
from __future__ import annotations

from typing import Iterator

import torch

import fusedact
from benchmarks import common
from benchmarks.common import Case, CompileBudget

GPU_QUICK = [1024, 32000, 128256]
GPU_FULL = [1024, 4096, 16384, 32000, 50257, 65536, 128256, 151936, 262144]
CPU_QUICK = [1024, 32000]
CPU_FULL = CPU_QUICK + [128256]
TEMPERATURE = 2.0


def _liger_softmax():
    try:
        from liger_kernel.ops.softmax import LigerSoftmaxFunction
    except Exception as error:  # not installed, or a version without softmax
        return f"Liger-Kernel softmax not importable ({type(error).__name__})"
    return lambda x: LigerSoftmaxFunction.apply(x / TEMPERATURE)


def cases(quick: bool, on_gpu: bool, dtypes) -> Iterator[Case]:
    device = "cuda" if on_gpu else "cpu"
    compile_budget = CompileBudget()
    widths = (GPU_QUICK if quick else GPU_FULL) if on_gpu else (CPU_QUICK if quick else CPU_FULL)
    elements = (1 << 27) if on_gpu else (1 << 21)   # 256 MiB of bf16 on a GPU: past L2
    liger = _liger_softmax()
    for dtype in dtypes:
        for width in widths:
            for log in (False, True):
                rows = max(1, elements // width)
                x = torch.randn(rows, width, device=device, dtype=dtype) * 4
                funcs = {
                    "fusedact": (lambda x, log=log: (fusedact.log_softmax if log else fusedact.softmax)(
                        x, temperature=TEMPERATURE)),
                    "eager": (lambda x, log=log: (torch.log_softmax if log else torch.softmax)(
                        x / TEMPERATURE, dim=-1)),
                }
                if compile_budget.allows(on_gpu, quick):
                    funcs["torch.compile"] = torch.compile(funcs["eager"])
                skipped = {} if "torch.compile" in funcs else {
                    "torch.compile": common.COMPILE_SKIPPED}
                if not log:
                    if isinstance(liger, str):
                        skipped["liger"] = liger
                    else:
                        funcs["liger"] = liger
                op = "log_softmax" if log else "softmax"
                shape = f"M={rows} N={width} T={TEMPERATURE}"
                itemsize = x.element_size()

                def forward(f, x=x):
                    def run():
                        with torch.no_grad():
                            return f(x)
                    return run
                yield Case(op, "forward", shape, dtype,
                           {**{k: forward(f) for k, f in funcs.items()}, **skipped},
                           bytes=2 * rows * width * itemsize)
                xg = x.clone().requires_grad_()
                dy = torch.randn_like(x)
                backward = {}
                for name, f in funcs.items():
                    y = f(xg)
                    backward[name] = (lambda y=y, xg=xg, dy=dy:
                                      torch.autograd.grad(y, xg, dy, retain_graph=True))
                yield Case(op, "backward", shape, dtype, {**backward, **skipped},
                           bytes=3 * rows * width * itemsize)
