"""Which path runs an op: "triton" (compiled, CUDA; float64 excepted), "interpret" (Triton's
CPU interpreter), or "torch" (eager torch: the CPU path when the interpreter is off, and
float64 on a GPU).

The interpreter is chosen by ``TRITON_INTERPRET=1`` in the environment BEFORE fusedact is
imported; ``triton.jit`` reads it when the kernels are defined, and a later change does
nothing. ``force("torch")`` (or ``FUSEDACT_BACKEND=torch``) makes every op take the plain
torch path, e.g. to compare it with the kernels.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

import torch

from fusedact.kernels import INTERPRETED

BACKENDS = ("triton", "interpret", "torch")
_forced: Optional[str] = None


def interpreter_enabled() -> bool:
    """True when the Triton kernels were built for the CPU interpreter."""
    return INTERPRETED


def active(tensor: torch.Tensor) -> str:
    """The path an op on ``tensor`` takes now: "triton", "interpret" or "torch"."""
    forced = _forced or os.environ.get("FUSEDACT_BACKEND") or None
    if forced is not None and forced not in BACKENDS:
        raise ValueError(f"FUSEDACT_BACKEND must be one of {BACKENDS}, got {forced!r}")
    if forced == "torch":
        return "torch"
    if INTERPRETED:
        default = "interpret"
    elif tensor.is_cuda and tensor.dtype != torch.float64:
        default = "triton"
    else:
        # float64 on a GPU takes the torch path too: a compiled launch passes Python float
        # scalars (1/T, slope, alpha) as fp32, which an fp64 result cannot absorb.
        default = "torch"
    if forced is not None and forced != default:
        raise RuntimeError(f"backend {forced!r} was forced, but {tensor.device} tensors take "
                           f"{default!r} here (the interpreter is chosen by TRITON_INTERPRET=1 "
                           "before fusedact is imported)")
    return default


@contextlib.contextmanager
def force(name: Optional[str]) -> Iterator[None]:
    """Within the block, every op takes the ``name`` path (None: the default choice)."""
    global _forced
    if name is not None and name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous
