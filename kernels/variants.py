"""What each Triton kernel can be launched with, as data, for ahead-of-time compilation.

Every kernel module in ``fusedact.kernels`` exposes ``compile_variants() -> list[Variant]``:
one entry per (kernel, dtype, constexpr variant, autotune config) that its launchers can
launch. ``fusedact.aot`` compiles each for sm_80 and sm_90 with no GPU and reports
registers, spills, shared memory and tensor-core use. Nothing here compiles or touches a
device.
"""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Variant:
    """One compilable launch of a kernel.

    ``signature``: argument name -> Triton type string ("*fp16", "i32", "fp32", ...) for every
    run-time argument; ``constexprs``: name -> value for every constexpr (block sizes
    included). ``tensor_cores``: a matmul kernel whose fp16/bf16 build must use HMMA/HGMMA.

    Triton specializes a launch on its integer arguments: an int equal to 1 becomes a
    constexpr (put it in ``constexprs`` with value 1 and signature "constexpr"), and an int
    divisible by 16 is compiled as such (name it in ``divisible_by_16``). Pointers are
    assumed 16-byte aligned (torch's allocations are). Describe the common launch this way
    (contiguous tensors, sizes that are multiples of 16): without it the build has no
    vectorized loads and no pipelining, and its registers and spills are not the ones a
    user gets.
    """

    name: str                   # e.g. "linear_act_fwd"
    kernel: Any                 # the @triton.jit function
    signature: dict
    constexprs: dict
    num_warps: int
    num_stages: int
    dtype: str                  # "fp16", "bf16", "fp32", "fp64"
    tensor_cores: bool = False
    divisible_by_16: tuple = ()  # int arguments the common launch has divisible by 16

    @property
    def label(self) -> str:
        flags = ",".join(f"{k}={v}" for k, v in sorted(self.constexprs.items()))
        return f"{self.name}[{self.dtype}; {flags}; w{self.num_warps} s{self.num_stages}]"
