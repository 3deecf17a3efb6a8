"""A training step (forward + backward) of an MLP of linear + activation layers: time,
bytes kept for backward, and peak memory on a GPU. FusedLinear stack vs the same eager
nn.Linear + activation stack (same weights) and its torch.compile."""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

import fusedact
from benchmarks import common
from benchmarks.common import Case, CompileBudget, saved_bytes

MODULES = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU,
    "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
}


def _stacks(activation, hidden, depth, device, dtype):
    eager = nn.Sequential(*[m for _ in range(depth)
                            for m in (nn.Linear(hidden, hidden), MODULES[activation]())])
    eager = eager.to(device=device, dtype=dtype)
    fused = nn.Sequential(*[fusedact.FusedLinear.from_linear(eager[2 * i], activation)
                            for i in range(depth)])
    return eager, fused


def _peak_bytes(step, on_gpu: bool):
    if not on_gpu:
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def cases(quick: bool, on_gpu: bool, dtypes) -> Iterator[Case]:
    device = "cuda" if on_gpu else "cpu"
    compile_budget = CompileBudget()
    tokens, hidden, depth = ((8192, 2048, 4) if on_gpu else (1024, 512, 4))
    activations = ["leaky_relu", "elu", "gelu", "relu"] if quick else list(MODULES)
    for dtype in dtypes:
        for activation in activations:
            eager, fused = _stacks(activation, hidden, depth, device, dtype)
            x = torch.randn(tokens, hidden, device=device, dtype=dtype)
            models = {"fusedact": fused, "eager": eager}
            if compile_budget.allows(on_gpu, quick):
                models["torch.compile"] = torch.compile(eager)
            providers, extra = {}, {}
            for name, model in models.items():
                def step(model=model, x=x):
                    model(x).float().square().mean().backward()
                providers[name] = step
                params = tuple(model.parameters())
                extra[name] = {"saved_bytes": saved_bytes(lambda m=model, x=x: m(x), params),
                               "peak_bytes": _peak_bytes(step, on_gpu)}
            if "torch.compile" not in models:
                providers["torch.compile"] = common.COMPILE_SKIPPED
            yield Case("mlp_train_step", "forward+backward",
                       f"tokens={tokens} hidden={hidden} depth={depth} {activation}",
                       dtype, providers, flops=6 * tokens * hidden * hidden * depth,
                       bound="compute", extra=extra)
