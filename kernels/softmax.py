"""Temperature softmax and log-softmax with online normalization, forward and backward.

Math, over the last axis of x [M, N], with z = x · (1/T) (the temperature is one fp32
multiply, folded into the load):

    softmax:      y_i = exp(z_i - m) / d          m = max_j z_j,  d = Σ_j exp(z_j - m)
    log-softmax:  y_i = z_i - m - log d
    backward:     softmax      dx = y ⊙ (dy - Σ_j dy_j y_j) / T
                  log-softmax  dx = (dy - exp(y) · Σ_j dy_j) / T

fp16 / bf16 / fp32 / fp64 in, math in fp32 (fp64 for fp64), y in the input's dtype; x may
have any strides (dim != -1 arrives here as a strided view), y and dx are contiguous. The
backward reads the saved output y, never x. All row offsets are int64 (M · stride can pass
2^31: a 65536 x 65536 input).

Three paths, chosen per problem by ``plan`` (all three are exercised by the CPU tests with
small shapes, because the interpreter's limits are small):
- one pass: N ≤ the largest block. BLOCK_M rows x BLOCK_N columns per program; each row is
  read once and written once (bytes 2·M·N·itemsize, the minimum);
- streaming: wider rows. One program per row streams the running (max, sum) through
  ``online.online_step``, then a second loop re-reads x and writes y (3·M·N·itemsize; the
  re-read mostly hits L2 for rows up to a few MB);
- split row: few very wide rows (M small, N huge), where one program per row would leave
  most SMs idle. Each row is cut into chunks; pass 1 writes partial (max, sum) per chunk, pass
  2 merges the partials of its row in a fixed order (``online.merge_partials``: no atomics,
  same bits every run) and writes its chunk. The backward splits the same way with partial
  Σ dy·y.
Roofline: memory-bound. FLOPs ~ 5·M·N (scale, max, sub, exp, sum) + N·M for the divide;
arithmetic intensity ≈ 1 FLOP/byte in fp32, far below any GPU's ridge, so the target is the
device-to-device copy bandwidth. Backward: reads y and dy, writes dx (3·M·N·itemsize one
pass).
"""
from __future__ import annotations

import dataclasses

import torch
import triton
import triton.language as tl

from . import INTERPRETED, interpreter_serialized
from .dtypes import acc_dtype, compute_dtype
from .online import merge_partials, online_step, safe_max
from .variants import Variant

# ----------------------------------------------------------------------------- kernels


@triton.jit
def load_scaled_logits(X, rows64, row_mask, cols, col_limit, stride_x_n, scale,
                       ACC_DTYPE: tl.constexpr):
    """z = x · scale in ACC_DTYPE for a [BLOCK_M, BLOCK_N] block; -inf outside the problem.

    ``rows64`` are int64 row offsets already multiplied by the row stride. Returns (z, mask).
    """
    mask = row_mask[:, None] & (cols[None, :] < col_limit)
    offsets = rows64[:, None] + cols[None, :].to(tl.int64) * stride_x_n
    x = tl.load(X + offsets, mask=mask, other=0.0)
    z = x.to(ACC_DTYPE) * scale
    return tl.where(mask, z, float("-inf")), mask


@triton.jit
def _fwd_stats(X, x_rows64, row_mask, col_start, col_limit, stride_x_n, inv_temperature,
               ACC_DTYPE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Running (max, sum) of z over columns [col_start, col_limit) of BLOCK_M rows."""
    m = tl.full((BLOCK_M,), float("-inf"), ACC_DTYPE)
    d = tl.zeros((BLOCK_M,), ACC_DTYPE)
    cols = col_start + tl.arange(0, BLOCK_N)
    for _ in range(0, tl.cdiv(col_limit - col_start, BLOCK_N)):
        z, _ = load_scaled_logits(X, x_rows64, row_mask, cols, col_limit, stride_x_n,
                                  inv_temperature, ACC_DTYPE)
        m, d, _, _ = online_step(m, d, z)
        cols += BLOCK_N
    return m, d


@triton.jit
def _fwd_output(z, m, d, LOG: tl.constexpr):
    """y from z and the row statistics: exp(z - m) / d, or (z - m) - log d.

    Never z - (m + log d): for |m| >> log d the sum rounds to m and log d is lost (at
    m = 1e38 every log-probability of a tied maximum came out 0 instead of -log 2).
    """
    if LOG:
        y = (z - m[:, None]) - tl.log(d)[:, None]
    else:
        y = tl.exp(z - safe_max(m)[:, None]) * (1.0 / d)[:, None]
    return y


@triton.jit
def _fwd_write(X, Y, x_rows64, y_rows64, row_mask, col_start, col_limit, stride_x_n, m, d,
               inv_temperature, LOG: tl.constexpr, ACC_DTYPE: tl.constexpr,
               BLOCK_N: tl.constexpr):
    """Second pass: re-read columns [col_start, col_limit) and write y (contiguous rows)."""
    cols = col_start + tl.arange(0, BLOCK_N)
    for _ in range(0, tl.cdiv(col_limit - col_start, BLOCK_N)):
        z, mask = load_scaled_logits(X, x_rows64, row_mask, cols, col_limit, stride_x_n,
                                     inv_temperature, ACC_DTYPE)
        y = _fwd_output(z, m, d, LOG)
        tl.store(Y + y_rows64[:, None] + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
        cols += BLOCK_N


@triton.jit
def _softmax_fwd_kernel(
    # pointers
    X, Y,
    # sizes
    M, N,
    # strides (y is contiguous: its row stride is N)
    stride_x_m, stride_x_n,
    # 1 / temperature
    inv_temperature,
    # meta
    LOG: tl.constexpr, ONE_PASS: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    x_rows64 = rows.to(tl.int64) * stride_x_m
    y_rows64 = rows.to(tl.int64) * N
    if ONE_PASS:  # the row is in registers: one read, one write
        cols = tl.arange(0, BLOCK_N)
        z, mask = load_scaled_logits(X, x_rows64, row_mask, cols, N, stride_x_n,
                                     inv_temperature, ACC_DTYPE)
        m = tl.full((BLOCK_M,), float("-inf"), ACC_DTYPE)
        d = tl.zeros((BLOCK_M,), ACC_DTYPE)
        m, d, _, e = online_step(m, d, z)
        if LOG:
            y = _fwd_output(z, m, d, LOG)
        else:
            y = e * (1.0 / d)[:, None]
        tl.store(Y + y_rows64[:, None] + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    else:
        m, d = _fwd_stats(X, x_rows64, row_mask, 0, N, stride_x_n, inv_temperature,
                          ACC_DTYPE, BLOCK_M, BLOCK_N)
        _fwd_write(X, Y, x_rows64, y_rows64, row_mask, 0, N, stride_x_n, m, d,
                   inv_temperature, LOG, ACC_DTYPE, BLOCK_N)


@triton.jit
def _softmax_fwd_split_stats_kernel(
    # pointers: partial max / sum, [M, num_splits] fp32 (fp64 for fp64)
    X, PART_MAX, PART_SUM,
    # sizes
    M, N, chunk, num_splits,
    # strides
    stride_x_m, stride_x_n,
    # 1 / temperature
    inv_temperature,
    # meta
    ACC_DTYPE: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Pass 1 of the split-row path: (max, sum) of one chunk of one row."""
    row = tl.program_id(0)
    split = tl.program_id(1)
    rows = row + tl.arange(0, 1)
    col_start = split * chunk
    col_limit = tl.minimum(N, col_start + chunk)
    m, d = _fwd_stats(X, rows.to(tl.int64) * stride_x_m, rows < M, col_start, col_limit,
                      stride_x_n, inv_temperature, ACC_DTYPE, 1, BLOCK_N)
    part = rows.to(tl.int64) * num_splits + split
    tl.store(PART_MAX + part, m)
    tl.store(PART_SUM + part, d)


@triton.jit
def _load_row_partials(PART, rows, num_splits, other, BLOCK_SPLITS: tl.constexpr):
    """The [1, BLOCK_SPLITS] per-chunk partials of ``rows`` from PART [M, num_splits];
    padding chunks read ``other`` (the merge's neutral value)."""
    splits = tl.arange(0, BLOCK_SPLITS)
    return tl.load(PART + rows.to(tl.int64)[:, None] * num_splits + splits[None, :],
                   mask=splits[None, :] < num_splits, other=other)


@triton.jit
def _softmax_fwd_split_write_kernel(
    # pointers
    X, Y, PART_MAX, PART_SUM,
    # sizes
    M, N, chunk, num_splits,
    # strides
    stride_x_m, stride_x_n,
    # 1 / temperature
    inv_temperature,
    # meta
    LOG: tl.constexpr, ACC_DTYPE: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_SPLITS: tl.constexpr,
):
    """Pass 2 of the split-row path: merge the row's partials, write one chunk."""
    row = tl.program_id(0)
    split = tl.program_id(1)
    rows = row + tl.arange(0, 1)
    m_parts = _load_row_partials(PART_MAX, rows, num_splits, float("-inf"), BLOCK_SPLITS)
    d_parts = _load_row_partials(PART_SUM, rows, num_splits, 0.0, BLOCK_SPLITS)
    m, d = merge_partials(m_parts, d_parts)
    col_start = split * chunk
    col_limit = tl.minimum(N, col_start + chunk)
    _fwd_write(X, Y, rows.to(tl.int64) * stride_x_m, rows.to(tl.int64) * N, rows < M,
               col_start, col_limit, stride_x_n, m, d, inv_temperature, LOG, ACC_DTYPE,
               BLOCK_N)


@triton.jit
def _bwd_load(Y, DY, y_rows64, dy_rows64, row_mask, cols, col_limit, stride_y_n, stride_dy_n,
              LOG: tl.constexpr, ACC_DTYPE: tl.constexpr):
    """(y, dy, mask) of a block in ACC_DTYPE; outside the problem y is 0 (log: -inf), dy 0."""
    mask = row_mask[:, None] & (cols[None, :] < col_limit)
    cols64 = cols[None, :].to(tl.int64)
    y = tl.load(Y + y_rows64[:, None] + cols64 * stride_y_n, mask=mask, other=0.0).to(ACC_DTYPE)
    dy = tl.load(DY + dy_rows64[:, None] + cols64 * stride_dy_n, mask=mask,
                 other=0.0).to(ACC_DTYPE)
    if LOG:
        y = tl.where(mask, y, float("-inf"))
    return y, dy, mask


@triton.jit
def _bwd_row_term(y, dy, LOG: tl.constexpr):
    """The summand of the backward's row reduction: dy·y (softmax) or dy (log-softmax)."""
    if LOG:
        term = dy
    else:
        term = dy * y
    return term


@triton.jit
def _bwd_output(y, dy, row_sum, inv_temperature, LOG: tl.constexpr):
    if LOG:
        dx = (dy - tl.exp(y) * row_sum[:, None]) * inv_temperature
    else:
        dx = y * (dy - row_sum[:, None]) * inv_temperature
    return dx


@triton.jit
def _bwd_sum(Y, DY, y_rows64, dy_rows64, row_mask, col_start, col_limit, stride_y_n,
             stride_dy_n, LOG: tl.constexpr, ACC_DTYPE: tl.constexpr, BLOCK_M: tl.constexpr,
             BLOCK_N: tl.constexpr):
    """Σ over columns [col_start, col_limit) of the backward's row term."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), ACC_DTYPE)
    cols = col_start + tl.arange(0, BLOCK_N)
    for _ in range(0, tl.cdiv(col_limit - col_start, BLOCK_N)):
        y, dy, _ = _bwd_load(Y, DY, y_rows64, dy_rows64, row_mask, cols, col_limit,
                             stride_y_n, stride_dy_n, LOG, ACC_DTYPE)
        acc += _bwd_row_term(y, dy, LOG)
        cols += BLOCK_N
    return tl.sum(acc, axis=1)


@triton.jit
def _bwd_write(Y, DY, DX, y_rows64, dy_rows64, dx_rows64, row_mask, col_start, col_limit,
               stride_y_n, stride_dy_n, row_sum, inv_temperature, LOG: tl.constexpr,
               ACC_DTYPE: tl.constexpr, BLOCK_N: tl.constexpr):
    cols = col_start + tl.arange(0, BLOCK_N)
    for _ in range(0, tl.cdiv(col_limit - col_start, BLOCK_N)):
        y, dy, mask = _bwd_load(Y, DY, y_rows64, dy_rows64, row_mask, cols, col_limit,
                                stride_y_n, stride_dy_n, LOG, ACC_DTYPE)
        dx = _bwd_output(y, dy, row_sum, inv_temperature, LOG)
        tl.store(DX + dx_rows64[:, None] + cols[None, :], dx.to(DX.dtype.element_ty),
                 mask=mask)
        cols += BLOCK_N


@triton.jit
def _softmax_bwd_kernel(
    # pointers
    Y, DY, DX,
    # sizes
    M, N,
    # strides (dx is contiguous)
    stride_y_m, stride_y_n, stride_dy_m, stride_dy_n,
    # 1 / temperature
    inv_temperature,
    # meta
    LOG: tl.constexpr, ONE_PASS: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    y_rows64 = rows.to(tl.int64) * stride_y_m
    dy_rows64 = rows.to(tl.int64) * stride_dy_m
    dx_rows64 = rows.to(tl.int64) * N
    if ONE_PASS:
        cols = tl.arange(0, BLOCK_N)
        y, dy, mask = _bwd_load(Y, DY, y_rows64, dy_rows64, row_mask, cols, N, stride_y_n,
                                stride_dy_n, LOG, ACC_DTYPE)
        row_sum = tl.sum(_bwd_row_term(y, dy, LOG), axis=1)
        dx = _bwd_output(y, dy, row_sum, inv_temperature, LOG)
        tl.store(DX + dx_rows64[:, None] + cols[None, :], dx.to(DX.dtype.element_ty),
                 mask=mask)
    else:
        row_sum = _bwd_sum(Y, DY, y_rows64, dy_rows64, row_mask, 0, N, stride_y_n,
                           stride_dy_n, LOG, ACC_DTYPE, BLOCK_M, BLOCK_N)
        _bwd_write(Y, DY, DX, y_rows64, dy_rows64, dx_rows64, row_mask, 0, N, stride_y_n,
                   stride_dy_n, row_sum, inv_temperature, LOG, ACC_DTYPE, BLOCK_N)


@triton.jit
def _softmax_bwd_split_sum_kernel(
    # pointers: partial sums [M, num_splits]
    Y, DY, PART_SUM,
    # sizes
    M, N, chunk, num_splits,
    # strides
    stride_y_m, stride_y_n, stride_dy_m, stride_dy_n,
    # meta
    LOG: tl.constexpr, ACC_DTYPE: tl.constexpr, BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0)
    split = tl.program_id(1)
    rows = row + tl.arange(0, 1)
    col_start = split * chunk
    col_limit = tl.minimum(N, col_start + chunk)
    row_sum = _bwd_sum(Y, DY, rows.to(tl.int64) * stride_y_m, rows.to(tl.int64) * stride_dy_m,
                       rows < M, col_start, col_limit, stride_y_n, stride_dy_n, LOG, ACC_DTYPE,
                       1, BLOCK_N)
    tl.store(PART_SUM + rows.to(tl.int64) * num_splits + split, row_sum)


@triton.jit
def _softmax_bwd_split_write_kernel(
    # pointers
    Y, DY, DX, PART_SUM,
    # sizes
    M, N, chunk, num_splits,
    # strides
    stride_y_m, stride_y_n, stride_dy_m, stride_dy_n,
    # 1 / temperature
    inv_temperature,
    # meta
    LOG: tl.constexpr, ACC_DTYPE: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_SPLITS: tl.constexpr,
):
    row = tl.program_id(0)
    split = tl.program_id(1)
    rows = row + tl.arange(0, 1)
    parts = _load_row_partials(PART_SUM, rows, num_splits, 0.0, BLOCK_SPLITS)
    row_sum = tl.sum(parts, axis=1)  # fixed order: deterministic
    col_start = split * chunk
    col_limit = tl.minimum(N, col_start + chunk)
    _bwd_write(Y, DY, DX, rows.to(tl.int64) * stride_y_m, rows.to(tl.int64) * stride_dy_m,
               rows.to(tl.int64) * N, rows < M, col_start, col_limit, stride_y_n, stride_dy_n,
               row_sum, inv_temperature, LOG, ACC_DTYPE, BLOCK_N)


# -------------------------------------------------------------------- launch plans


@dataclasses.dataclass(frozen=True)
class Limits:
    """Block-size limits of the row kernels (shared with ``kd_loss.py``).

    ``max_block``: the widest row kept in registers (one pass). ``min_block``: the narrowest
    block. ``block_elements``: elements per one-pass program (BLOCK_M = this / BLOCK_N rows).
    ``stream_block``: the column block of the streaming and split loops.
    ``split_min_cols``: the fewest columns worth a program of their own. ``max_splits``:
    chunks per row at most (the BLOCK_SPLITS of the merge). ``target_programs``: split rows
    until about this many programs run (None: 2 x the device's SM count).
    """

    max_block: int
    min_block: int
    block_elements: int
    stream_block: int
    split_min_cols: int
    max_splits: int
    target_programs: int | None


#: Compiled GPU kernels: one pass up to 16384 columns (64 KiB of fp32 in registers over 16
#: warps: 32 values a thread), 4096-wide streaming blocks.
GPU_LIMITS = Limits(max_block=16384, min_block=64, block_elements=4096, stream_block=4096,
                    split_min_cols=16384, max_splits=128, target_programs=None)
#: The interpreter costs ~4 ms per program x loop step, so its blocks are tiny: every path
#: is reachable with rows of a few hundred columns.
INTERPRETER_LIMITS = Limits(max_block=64, min_block=16, block_elements=256, stream_block=32,
                            split_min_cols=64, max_splits=8, target_programs=8)


def default_limits() -> Limits:
    return INTERPRETER_LIMITS if INTERPRETED else GPU_LIMITS


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a [M, N] row problem is launched: path, blocks, warps and (split) chunks."""

    path: str            # "one_pass", "stream" or "split"
    block_m: int
    block_n: int
    num_warps: int
    splits: int = 1
    chunk: int = 0
    block_splits: int = 1


def one_pass_warps(block_m: int, block_n: int) -> int:
    """4 warps up to 4096 elements, then one more warp per 1024 (8 at 8192, 16 at 16384)."""
    return min(16, max(4, block_m * block_n // 1024))


_sm_count: dict = {}


def _target_programs(limits: Limits, device: torch.device) -> int:
    if limits.target_programs is not None:
        return limits.target_programs
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _sm_count:
        _sm_count[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return 2 * _sm_count[index]


def plan(M: int, N: int, device: torch.device | str = "cpu", limits: Limits | None = None,
         allow_split: bool = True) -> Plan:
    """The launch plan of a row problem with M rows of N >= 1 columns."""
    limits = limits or default_limits()
    block_n = max(limits.min_block, triton.next_power_of_2(N))
    if block_n <= limits.max_block:
        # Not capped by M: a few masked rows cost nothing, and a finite set of block
        # shapes is what compile_variants lists for ahead-of-time compilation.
        block_m = max(1, limits.block_elements // block_n)
        return Plan("one_pass", block_m, block_n, one_pass_warps(block_m, block_n))
    stream_warps = one_pass_warps(1, limits.stream_block) * 2
    if allow_split:
        target = _target_programs(limits, torch.device(device))
        splits = min(limits.max_splits, triton.cdiv(N, limits.split_min_cols),
                     triton.cdiv(target, M))
        if splits >= 2:
            chunk = triton.cdiv(triton.cdiv(N, splits), limits.stream_block) * limits.stream_block
            splits = triton.cdiv(N, chunk)
            if splits >= 2:
                return Plan("split", 1, limits.stream_block, stream_warps, splits, chunk,
                            triton.next_power_of_2(limits.max_splits))
    return Plan("stream", 1, limits.stream_block, stream_warps)


# ------------------------------------------------------------------------- launchers



@interpreter_serialized
def softmax_forward(x: torch.Tensor, temperature: float, log: bool,
                    limits: Limits | None = None) -> torch.Tensor:
    """softmax(x / T) (``log``: log_softmax) over the last axis of x [M, N] (any strides).

    Returns y [M, N], contiguous, in x's dtype. M, N >= 1; temperature > 0 (checked above).
    """
    M, N = x.shape
    y = torch.empty((M, N), dtype=x.dtype, device=x.device)
    inv_temperature = 1.0 / float(temperature)
    p = plan(M, N, x.device, limits)
    acc = acc_dtype(x.dtype)
    if p.path == "split":
        part_max = torch.empty((M, p.splits), dtype=compute_dtype(x.dtype), device=x.device)
        part_sum = torch.empty_like(part_max)
        grid = (M, p.splits)
        _softmax_fwd_split_stats_kernel[grid](
            x, part_max, part_sum, M, N, p.chunk, p.splits, x.stride(0), x.stride(1),
            inv_temperature, ACC_DTYPE=acc, BLOCK_N=p.block_n, num_warps=p.num_warps)
        _softmax_fwd_split_write_kernel[grid](
            x, y, part_max, part_sum, M, N, p.chunk, p.splits, x.stride(0), x.stride(1),
            inv_temperature, LOG=log, ACC_DTYPE=acc, BLOCK_N=p.block_n,
            BLOCK_SPLITS=p.block_splits, num_warps=p.num_warps)
        return y
    _softmax_fwd_kernel[(triton.cdiv(M, p.block_m),)](
        x, y, M, N, x.stride(0), x.stride(1), inv_temperature,
        LOG=log, ONE_PASS=p.path == "one_pass", ACC_DTYPE=acc,
        BLOCK_M=p.block_m, BLOCK_N=p.block_n, num_warps=p.num_warps)
    return y


@interpreter_serialized
def softmax_backward(y: torch.Tensor, grad_output: torch.Tensor, temperature: float, log: bool,
                     limits: Limits | None = None) -> torch.Tensor:
    """dx of ``softmax_forward`` from its output y and dy (both [M, N], any strides).

    Returns dx [M, N], contiguous, in y's dtype.
    """
    M, N = y.shape
    dx = torch.empty((M, N), dtype=y.dtype, device=y.device)
    inv_temperature = 1.0 / float(temperature)
    p = plan(M, N, y.device, limits)
    acc = acc_dtype(y.dtype)
    strides = (y.stride(0), y.stride(1), grad_output.stride(0), grad_output.stride(1))
    if p.path == "split":
        part_sum = torch.empty((M, p.splits), dtype=compute_dtype(y.dtype), device=y.device)
        grid = (M, p.splits)
        _softmax_bwd_split_sum_kernel[grid](
            y, grad_output, part_sum, M, N, p.chunk, p.splits, *strides,
            LOG=log, ACC_DTYPE=acc, BLOCK_N=p.block_n, num_warps=p.num_warps)
        _softmax_bwd_split_write_kernel[grid](
            y, grad_output, dx, part_sum, M, N, p.chunk, p.splits, *strides, inv_temperature,
            LOG=log, ACC_DTYPE=acc, BLOCK_N=p.block_n, BLOCK_SPLITS=p.block_splits,
            num_warps=p.num_warps)
        return dx
    _softmax_bwd_kernel[(triton.cdiv(M, p.block_m),)](
        y, grad_output, dx, M, N, *strides, inv_temperature,
        LOG=log, ONE_PASS=p.path == "one_pass", ACC_DTYPE=acc,
        BLOCK_M=p.block_m, BLOCK_N=p.block_n, num_warps=p.num_warps)
    return dx


# ----------------------------------------------------------------- AOT compile list

_POINTER = {"fp16": "*fp16", "bf16": "*bf16", "fp32": "*fp32"}


def gpu_block_shapes(limits: Limits = GPU_LIMITS) -> list[tuple[str, int, int, int]]:
    """Every (path, BLOCK_M, BLOCK_N, num_warps) ``plan`` can return on a GPU."""
    shapes = []
    block_n = limits.min_block
    while block_n <= limits.max_block:
        block_m = max(1, limits.block_elements // block_n)
        shapes.append(("one_pass", block_m, block_n, one_pass_warps(block_m, block_n)))
        block_n *= 2
    shapes.append(("stream", 1, limits.stream_block, one_pass_warps(1, limits.stream_block) * 2))
    return shapes


def kernel_signature(kernel, types: dict) -> dict:
    """``types`` (argument -> Triton type) in the kernel's argument order, all covered."""
    missing = set(kernel.arg_names) ^ set(types)
    if missing:
        raise ValueError(f"{kernel.__name__}: signature mismatch on {sorted(missing)}")
    return {name: types[name] for name in kernel.arg_names}


def compile_variants() -> list[Variant]:
    """Every launch ``softmax_forward`` / ``softmax_backward`` can make on a GPU.

    fp16 / bf16 / fp32 x LOG x every block shape of ``gpu_block_shapes`` (one pass 64 ..
    16384 columns, and streaming), plus the four split-row kernels. Described for the
    common launch: contiguous rows (the column strides are constexpr 1, as Triton
    specializes them). num_stages is Triton's default (3): the launchers do not set it.
    """
    variants = []
    limits = GPU_LIMITS
    stream_warps = one_pass_warps(1, limits.stream_block) * 2
    block_splits = triton.next_power_of_2(limits.max_splits)
    for dtype, pointer in _POINTER.items():
        acc = tl.float32

        def add(name, kernel, pointers, ints, floats, constexprs, num_warps):
            types = {p: "*fp32" if p.startswith("PART_") else pointer for p in pointers}
            types.update({i: "i32" for i in ints})
            types.update({f: "fp32" for f in floats})
            types.update({c: "constexpr" for c in constexprs})
            signature = kernel_signature(kernel, types)
            variants.append(Variant(name, kernel, signature, constexprs, num_warps, 3, dtype))

        for log in (False, True):
            for path, block_m, block_n, warps in gpu_block_shapes(limits):
                add("softmax_fwd", _softmax_fwd_kernel, ("X", "Y"),
                    ("M", "N", "stride_x_m"), ("inv_temperature",),
                    dict(stride_x_n=1, LOG=log, ONE_PASS=path == "one_pass", ACC_DTYPE=acc,
                         BLOCK_M=block_m, BLOCK_N=block_n), warps)
                add("softmax_bwd", _softmax_bwd_kernel, ("Y", "DY", "DX"),
                    ("M", "N", "stride_y_m", "stride_dy_m"), ("inv_temperature",),
                    dict(stride_y_n=1, stride_dy_n=1, LOG=log, ONE_PASS=path == "one_pass",
                         ACC_DTYPE=acc, BLOCK_M=block_m, BLOCK_N=block_n), warps)
            add("softmax_fwd_split_write", _softmax_fwd_split_write_kernel,
                ("X", "Y", "PART_MAX", "PART_SUM"),
                ("M", "N", "chunk", "num_splits", "stride_x_m"), ("inv_temperature",),
                dict(stride_x_n=1, LOG=log, ACC_DTYPE=acc, BLOCK_N=limits.stream_block,
                     BLOCK_SPLITS=block_splits), stream_warps)
            add("softmax_bwd_split_sum", _softmax_bwd_split_sum_kernel,
                ("Y", "DY", "PART_SUM"),
                ("M", "N", "chunk", "num_splits", "stride_y_m", "stride_dy_m"), (),
                dict(stride_y_n=1, stride_dy_n=1, LOG=log, ACC_DTYPE=acc,
                     BLOCK_N=limits.stream_block), stream_warps)
            add("softmax_bwd_split_write", _softmax_bwd_split_write_kernel,
                ("Y", "DY", "DX", "PART_SUM"),
                ("M", "N", "chunk", "num_splits", "stride_y_m", "stride_dy_m"),
                ("inv_temperature",),
                dict(stride_y_n=1, stride_dy_n=1, LOG=log, ACC_DTYPE=acc,
                     BLOCK_N=limits.stream_block, BLOCK_SPLITS=block_splits), stream_warps)
        add("softmax_fwd_split_stats", _softmax_fwd_split_stats_kernel,
            ("X", "PART_MAX", "PART_SUM"), ("M", "N", "chunk", "num_splits", "stride_x_m"),
            ("inv_temperature",),
            dict(stride_x_n=1, ACC_DTYPE=acc, BLOCK_N=limits.stream_block), stream_warps)
    return variants
