"""The accumulator dtype rule, written once: fp64 math for float64 data, fp32 for the rest
(fp16, bf16, fp32), as torch accumulates."""
import torch
import triton.language as tl


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The torch dtype that data of ``dtype`` is accumulated in."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def acc_dtype(dtype: torch.dtype):
    """The Triton dtype (an ``ACC_DTYPE`` constexpr) that data of ``dtype`` accumulates in."""
    return tl.float64 if dtype == torch.float64 else tl.float32
