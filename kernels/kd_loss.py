"""Fused knowledge-distillation loss: the loss and the student's gradient in one kernel.

Math, per row r of student logits s [M, V] and teacher logits t [M, V], temperature T,
zs = s / T, zt = t / T (one fp32 multiply by 1/T on load), p = softmax:

    KL_r   = Σ_i p_t,i (zt_i - zs_i) + (m_s - m_t) + (log d_s - log d_t)
             (= KL(p_t ‖ p_s); the first sum is accumulated online, rescaled with the
             teacher's running max exactly like d_t, so the row is read once)
    CE_r   = (m_h - s_{label_r}) + log d_h           (hard-label cross entropy, at T = 1)
    loss_r = keep_r · ((1 - α) · T² · KL_r · c_kl + α · CE_r · c_ce)
    dL/ds  = keep_r · ((1 - α) · c_kl · T · (p_s - p_t) + α · c_ce · (softmax(s) - onehot))

α = hard_weight, keep_r = (label_r != ignore_index) (1 without labels), and (c_kl, c_ce) the
reduction's scale (1 for "sum" and "none"; 1/rows_kept for "batchmean"; 1/(rows_kept · V)
and 1/rows_kept for "mean"), read from a 2-element device tensor, so counting the kept rows
needs no host sync. Each program writes its rows' scaled losses (the reduction is a
deterministic torch sum of M values) and, when a gradient is needed, dL/ds in the student's
dtype: the backward is then one elementwise multiply by the incoming per-row gradient.
Online statistics come from ``online.py``, shared with the softmax kernels.

Paths (``softmax.plan``): rows up to the block limit are read once (s and t) and the
gradient written once; wider rows stream the statistics, then re-read s and t to write the
gradient. Rows are never split across programs (distillation has many rows: tokens).
Roofline: memory-bound. Bytes: read s and t, write dL/ds: 3·M·V·itemsize one pass
(5·M·V streaming); FLOPs ~ 12·M·V (two exps per element, three with the hard loss).
The eager formula reads and writes ~6 [M, V] fp32 temporaries forward and as many backward.
"""
from __future__ import annotations

import dataclasses

import torch
import triton
import triton.language as tl

from . import INTERPRETED, interpreter_serialized
from .dtypes import acc_dtype, compute_dtype
from .online import online_step, safe_max
from .softmax import (GPU_LIMITS, INTERPRETER_LIMITS, Limits, gpu_block_shapes,
                      kernel_signature, load_scaled_logits, plan)
from .variants import Variant

# ----------------------------------------------------------------------------- kernels


@triton.jit
def _kd_load(S, TEACHER, s_rows64, t_rows64, row_mask, cols, N, stride_s_n, stride_t_n,
             inv_temperature, ACC_DTYPE: tl.constexpr):
    """(s, zs, zt, mask) of a block: raw student logits, and both scaled by 1/T."""
    s, mask = load_scaled_logits(S, s_rows64, row_mask, cols, N, stride_s_n, 1.0, ACC_DTYPE)
    zt, _ = load_scaled_logits(TEACHER, t_rows64, row_mask, cols, N, stride_t_n,
                               inv_temperature, ACC_DTYPE)
    return s, s * inv_temperature, zt, mask


@triton.jit
def _kd_stats_step(s, zs, zt, m_s, d_s, m_t, d_t, a_t, m_h, d_h, HARD: tl.constexpr):
    """Update the row statistics with one block: student (m_s, d_s), teacher (m_t, d_t,
    a_t = Σ e_t·(zt - zs), rescaled with the teacher's max), and the student at T = 1 for
    the hard loss (m_h, d_h)."""
    m_s, d_s, _, _ = online_step(m_s, d_s, zs)
    m_t, d_t, rescale_t, e_t = online_step(m_t, d_t, zt)
    # where p_t = 0 the term is 0 even if zs = -inf (0·inf would be NaN)
    a_t = a_t * rescale_t + tl.sum(tl.where(e_t > 0.0, e_t * (zt - zs), 0.0), axis=1)
    if HARD:
        m_h, d_h, _, _ = online_step(m_h, d_h, s)
    return m_s, d_s, m_t, d_t, a_t, m_h, d_h


@triton.jit
def _kd_grad(s, zs, zt, cols, label, keep, m_s, inv_d_s, m_t, inv_d_t, m_h, inv_d_h,
             kl_coef, ce_coef, HARD: tl.constexpr):
    """dL/ds of a block; kl_coef = (1-α)·c_kl·T and ce_coef = α·c_ce."""
    p_s = tl.exp(zs - safe_max(m_s)[:, None]) * inv_d_s[:, None]
    p_t = tl.exp(zt - safe_max(m_t)[:, None]) * inv_d_t[:, None]
    grad = kl_coef * (p_s - p_t)
    if HARD:
        p_h = tl.exp(s - safe_max(m_h)[:, None]) * inv_d_h[:, None]
        onehot = tl.where(cols[None, :] == label[:, None], 1.0, 0.0)
        grad += ce_coef * (p_h - onehot)
    return tl.where(keep[:, None], grad, 0.0)


@triton.jit
def _kd_loss_fwd_kernel(
    # pointers: ROW_LOSS [M] and SCALES [2] in the accumulator dtype, GRAD [M, V] contiguous
    S, TEACHER, LABELS, ROW_LOSS, GRAD, SCALES,
    # sizes
    M, N,
    # strides
    stride_s_m, stride_s_n, stride_t_m, stride_t_n,
    # scalars
    inv_temperature, temperature, kl_weight, hard_weight, ignore_index,
    # meta
    HAS_LABELS: tl.constexpr, HARD: tl.constexpr, WRITE_GRAD: tl.constexpr,
    ONE_PASS: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < M
    s_rows64 = rows.to(tl.int64) * stride_s_m
    t_rows64 = rows.to(tl.int64) * stride_t_m
    if HAS_LABELS:
        label = tl.load(LABELS + rows, mask=row_mask, other=ignore_index)
        keep = label != ignore_index
    else:
        label = tl.zeros((BLOCK_M,), tl.int64)
        keep = row_mask
    keep = keep & row_mask
    # A kept row whose label lies outside [0, N) (functional.py checks CPU labels only, to
    # avoid a device sync) gets a NaN loss and gradient: visible, never a silent wrong value.
    bad_label = keep & ((label < 0) | (label >= N))
    m_s = tl.full((BLOCK_M,), float("-inf"), ACC_DTYPE)
    d_s = tl.zeros((BLOCK_M,), ACC_DTYPE)
    m_t = tl.full((BLOCK_M,), float("-inf"), ACC_DTYPE)
    d_t = tl.zeros((BLOCK_M,), ACC_DTYPE)
    a_t = tl.zeros((BLOCK_M,), ACC_DTYPE)
    m_h = tl.full((BLOCK_M,), float("-inf"), ACC_DTYPE)
    d_h = tl.zeros((BLOCK_M,), ACC_DTYPE)
    cols = tl.arange(0, BLOCK_N)
    if ONE_PASS:  # the only block stays in registers for the gradient below
        s, zs, zt, mask = _kd_load(S, TEACHER, s_rows64, t_rows64, row_mask, cols, N,
                                   stride_s_n, stride_t_n, inv_temperature, ACC_DTYPE)
        m_s, d_s, m_t, d_t, a_t, m_h, d_h = _kd_stats_step(
            s, zs, zt, m_s, d_s, m_t, d_t, a_t, m_h, d_h, HARD)
    else:
        for _ in range(0, tl.cdiv(N, BLOCK_N)):
            s, zs, zt, mask = _kd_load(S, TEACHER, s_rows64, t_rows64, row_mask, cols, N,
                                       stride_s_n, stride_t_n, inv_temperature, ACC_DTYPE)
            m_s, d_s, m_t, d_t, a_t, m_h, d_h = _kd_stats_step(
                s, zs, zt, m_s, d_s, m_t, d_t, a_t, m_h, d_h, HARD)
            cols += BLOCK_N

    scale_kl = tl.load(SCALES)
    scale_ce = tl.load(SCALES + 1)
    # differences of the maxima and of the logs apart: m + log d would lose log d for |m| >> 1
    kl = a_t / d_t + (m_s - m_t) + (tl.log(d_s) - tl.log(d_t))
    row_loss = (kl_weight * temperature * temperature * scale_kl) * kl
    if HARD:
        label_ok = keep & (label >= 0) & (label < N)
        s_label = tl.load(S + s_rows64 + tl.where(label_ok, label, 0).to(tl.int64) * stride_s_n,
                          mask=label_ok, other=0.0).to(ACC_DTYPE)
        row_loss += (hard_weight * scale_ce) * ((m_h - s_label) + tl.log(d_h))
    # an ignored row adds 0, unless every row is ignored: then the mean's scale is 1/0 and
    # 0·inf makes the loss NaN, as torch's cross_entropy gives
    row_loss = tl.where(keep, row_loss, 0.0 * scale_ce)
    tl.store(ROW_LOSS + rows, tl.where(bad_label, float("nan"), row_loss), mask=row_mask)

    if WRITE_GRAD:
        kl_coef = kl_weight * scale_kl * temperature
        ce_coef = hard_weight * scale_ce
        inv_d_s = 1.0 / d_s
        inv_d_t = 1.0 / d_t
        inv_d_h = 1.0 / d_h
        g_rows64 = rows.to(tl.int64) * N
        if ONE_PASS:  # s, zs, zt of the only block are still in registers
            cols = tl.arange(0, BLOCK_N)
            grad = _kd_grad(s, zs, zt, cols, label, keep, m_s, inv_d_s, m_t, inv_d_t, m_h,
                            inv_d_h, kl_coef, ce_coef, HARD)
            grad = tl.where(bad_label[:, None], float("nan"), grad)
            tl.store(GRAD + g_rows64[:, None] + cols[None, :], grad.to(GRAD.dtype.element_ty),
                     mask=mask)
        else:
            cols = tl.arange(0, BLOCK_N)
            for _ in range(0, tl.cdiv(N, BLOCK_N)):
                s, zs, zt, mask = _kd_load(S, TEACHER, s_rows64, t_rows64, row_mask, cols, N,
                                           stride_s_n, stride_t_n, inv_temperature, ACC_DTYPE)
                grad = _kd_grad(s, zs, zt, cols, label, keep, m_s, inv_d_s, m_t, inv_d_t,
                                m_h, inv_d_h, kl_coef, ce_coef, HARD)
                grad = tl.where(bad_label[:, None], float("nan"), grad)
                tl.store(GRAD + g_rows64[:, None] + cols[None, :],
                         grad.to(GRAD.dtype.element_ty), mask=mask)
                cols += BLOCK_N


@triton.jit
def _scale_rows_kernel(
    # pointers: GRAD and DX [M, V] contiguous, ROW_SCALE [M] (stride 0: one shared value)
    GRAD, ROW_SCALE, DX,
    # sizes
    numel, N,
    # stride of ROW_SCALE
    stride_scale,
    # meta
    ACC_DTYPE: tl.constexpr, BLOCK: tl.constexpr,
):
    """The KD backward, flat over M·V elements: dx[r, i] = grad[r, i] · row_scale[r]."""
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    scale = tl.load(ROW_SCALE + (offsets // N) * stride_scale, mask=mask, other=0.0)
    grad = tl.load(GRAD + offsets, mask=mask, other=0.0).to(ACC_DTYPE)
    tl.store(DX + offsets, (grad * scale.to(ACC_DTYPE)).to(DX.dtype.element_ty), mask=mask)


# -------------------------------------------------------------------- launch plans

#: Two rows (student and teacher) and their probabilities live in registers in the one-pass
#: path: half the softmax's one-pass width and half its elements per multi-row program. With
#: 4096 elements on 4 warps (64 x 64 tiles) the fp16 forward with its gradient spilled 6.9%
#: of its instructions on sm_80 (the AOT report); 2048 elements keep 16 a thread per tensor.
KD_GPU_LIMITS = dataclasses.replace(GPU_LIMITS, max_block=GPU_LIMITS.max_block // 2,
                                    block_elements=GPU_LIMITS.block_elements // 2)
KD_INTERPRETER_LIMITS = INTERPRETER_LIMITS


def kd_limits() -> Limits:
    return KD_INTERPRETER_LIMITS if INTERPRETED else KD_GPU_LIMITS


#: Elements per program of the elementwise backward (16 per thread at 8 warps on a GPU).
SCALE_BLOCK = 4096
INTERPRETER_SCALE_BLOCK = 256



# ------------------------------------------------------------------------- launchers




def reduction_scales(labels, M: int, N: int, reduction: str, ignore_index: int,
                     device, dtype: torch.dtype) -> torch.Tensor:
    """(c_kl, c_ce) of the reduction as a 2-element device tensor (no host sync)."""
    if reduction in ("none", "sum"):
        return torch.ones(2, dtype=dtype, device=device)
    if labels is None:
        kept = torch.full((), float(M), dtype=dtype, device=device)
    else:
        kept = (labels != ignore_index).sum().to(dtype)
    per_row = 1.0 / kept
    kl_scale = per_row / N if reduction == "mean" else per_row
    return torch.stack([kl_scale, per_row])


@interpreter_serialized
def kd_loss_forward(student: torch.Tensor, teacher: torch.Tensor, labels, temperature: float,
                    hard_weight: float, ignore_index: int, reduction: str, write_grad: bool,
                    limits: Limits | None = None):
    """Per-row scaled losses [M] (fp32; fp64 for fp64) and dL/dstudent [M, V] in the student's
    dtype (an empty tensor unless ``write_grad``). student, teacher [M, V] (any strides);
    labels [M] integer or None. M, V >= 1.
    """
    M, N = student.shape
    work = compute_dtype(student.dtype)
    row_loss = torch.empty((M,), dtype=work, device=student.device)
    grad = torch.empty((M, N) if write_grad else (0,), dtype=student.dtype,
                       device=student.device)
    has_labels = labels is not None
    labels64 = labels.to(torch.int64).contiguous() if has_labels else None
    scales = reduction_scales(labels64, M, N, reduction, ignore_index, student.device, work)
    p = plan(M, N, student.device, limits or kd_limits(), allow_split=False)
    _kd_loss_fwd_kernel[(triton.cdiv(M, p.block_m),)](
        student, teacher, labels64 if has_labels else row_loss, row_loss,
        grad if write_grad else row_loss, scales,
        M, N, student.stride(0), student.stride(1), teacher.stride(0), teacher.stride(1),
        1.0 / float(temperature), float(temperature), 1.0 - float(hard_weight),
        float(hard_weight), int(ignore_index),
        HAS_LABELS=has_labels, HARD=has_labels and hard_weight != 0.0, WRITE_GRAD=write_grad,
        ONE_PASS=p.path == "one_pass", ACC_DTYPE=acc_dtype(student.dtype),
        BLOCK_M=p.block_m, BLOCK_N=p.block_n, num_warps=p.num_warps)
    return row_loss, grad


@interpreter_serialized
def kd_loss_backward(grad_rows: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """dx = grad · grad_rows[:, None] for grad [M, V] and grad_rows [M] (or a 0-stride view
    of one value). Returns dx [M, V] contiguous in grad's dtype."""
    M, N = grad.shape
    grad = grad.contiguous()
    dx = torch.empty_like(grad)
    block = INTERPRETER_SCALE_BLOCK if INTERPRETED else SCALE_BLOCK
    _scale_rows_kernel[(triton.cdiv(grad.numel(), block),)](
        grad, grad_rows, dx, grad.numel(), N, grad_rows.stride(0),
        ACC_DTYPE=acc_dtype(grad.dtype), BLOCK=block, num_warps=8)
    return dx


# ----------------------------------------------------------------- AOT compile list


def compile_variants() -> list[Variant]:
    """Every launch ``kd_loss_forward`` / ``kd_loss_backward`` can make on a GPU.

    The forward: fp16 / bf16 / fp32 x {no labels, labels, labels + hard loss} x WRITE_GRAD x
    every block shape of ``softmax.gpu_block_shapes(KD_GPU_LIMITS)`` (one pass 64 .. 8192
    columns, and streaming); the backward: one block per dtype. Contiguous rows (column
    strides constexpr 1); without labels the LABELS and, without a gradient, the GRAD
    arguments receive the fp32 row-loss buffer, as the launcher passes it.
    """
    variants = []
    label_modes = ((False, False), (True, False), (True, True))  # (HAS_LABELS, HARD)
    for dtype in ("fp16", "bf16", "fp32"):
        pointer = f"*{dtype}"
        for has_labels, hard in label_modes:
            for write_grad in (False, True):
                for path, block_m, block_n, warps in gpu_block_shapes(KD_GPU_LIMITS):
                    constexprs = dict(stride_s_n=1, stride_t_n=1, HAS_LABELS=has_labels,
                                      HARD=hard, WRITE_GRAD=write_grad,
                                      ONE_PASS=path == "one_pass", ACC_DTYPE=tl.float32,
                                      BLOCK_M=block_m, BLOCK_N=block_n)
                    types = {"S": pointer, "TEACHER": pointer,
                             "LABELS": "*i64" if has_labels else "*fp32",
                             "ROW_LOSS": "*fp32", "GRAD": pointer if write_grad else "*fp32",
                             "SCALES": "*fp32", "M": "i32", "N": "i32", "stride_s_m": "i32",
                             "stride_t_m": "i32", "inv_temperature": "fp32",
                             "temperature": "fp32", "kl_weight": "fp32",
                             "hard_weight": "fp32", "ignore_index": "i32",
                             **{name: "constexpr" for name in constexprs}}
                    variants.append(Variant("kd_loss_fwd", _kd_loss_fwd_kernel,
                                            kernel_signature(_kd_loss_fwd_kernel, types),
                                            constexprs, warps, 3, dtype))
        constexprs = dict(ACC_DTYPE=tl.float32, BLOCK=SCALE_BLOCK)
        types = {"GRAD": pointer, "ROW_SCALE": "*fp32", "DX": pointer, "numel": "i32",
                 "N": "i32", "stride_scale": "i32", "ACC_DTYPE": "constexpr",
                 "BLOCK": "constexpr"}
        variants.append(Variant("kd_loss_bwd", _scale_rows_kernel,
                                kernel_signature(_scale_rows_kernel, types), constexprs, 8, 3,
                                dtype))
    return variants
