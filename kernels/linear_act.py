"""Fused linear + activation: ``y = act(x @ W^T + b)``, forward and backward.

Shapes: x [M, K], weight W [N, K] (torch's [out_features, in_features]), bias b [N],
y [M, N]. fp16 / bf16 / fp32 (and fp64) in; accumulation in fp32 (fp64 for fp64); y in the
input dtype.

Forward, one kernel: a tiled matmul with grouped program ordering (GROUP_M row tiles share
each column tile of W while it sits in L2); bias and activation are applied to the fp32
accumulator before the single store, so z = xW^T + b never makes a round trip through
memory. For gelu/gelu_tanh/silu (derivative needs z) the same store also writes z when a
backward will need it.
    FLOPs 2·M·N·K; bytes (M·K + N·K + M·N [+ M·N for z]) · itemsize.
    Matmul-bound unless K is small: at K = 1024 in bf16 the arithmetic intensity is about
    2·K / (2·2) ≈ 512 FLOP/byte on the M·N term alone, above an H100's ridge (~300).

Backward, three kernels, no atomics (bitwise deterministic):
    dZ = dY ⊙ act'(saved)       elementwise; saved is y or z (activations.py)
    dX = dZ @ W                 matmul
    dW = dZ^T @ X, db = Σ_rows dZ   one matmul; its first column of programs also sums rows
    FLOPs 4·M·N·K (+ O(M·N)); bytes 3·M·N (dZ pass) + reads of dZ, W, X and writes of dX, dW.
Materialising dZ costs one M·N round trip but computes act' once per element; fusing act'
into the loads of the dX matmul would recompute it once per column tile of dX (cdiv(K,
BLOCK_N) times), which for gelu costs about as much as the tensor-core work itself.
"""
import torch
import triton
import triton.language as tl

from . import INTERPRETED, interpreter_serialized
from .activations import CODES, activation_grad, apply_activation
from .autotune import Config, Tuner, bucket
from .dtypes import acc_dtype

# ----------------------------------------------------------------------------- kernels


@triton.jit
def _grouped_tile(pid, rows, cols, BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr,
                  GROUP_ROWS: tl.constexpr):
    """(row tile, column tile) of program ``pid`` in grouped order, for L2 reuse."""
    tiles_r = tl.cdiv(rows, BLOCK_ROWS)
    tiles_c = tl.cdiv(cols, BLOCK_COLS)
    tiles_in_group = GROUP_ROWS * tiles_c
    first_r = (pid // tiles_in_group) * GROUP_ROWS
    group_rows = tl.minimum(tiles_r - first_r, GROUP_ROWS)
    pid_r = first_r + (pid % tiles_in_group) % group_rows
    pid_c = (pid % tiles_in_group) // group_rows
    return pid_r, pid_c


@triton.jit
def _matmul_tile(A, B, offs_p, offs_q, R,
                 stride_a_p, stride_a_r, stride_b_r, stride_b_q,
                 ACC_DTYPE: tl.constexpr, ALLOW_TF32: tl.constexpr, UPCAST: tl.constexpr,
                 BLOCK_P: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_R: tl.constexpr):
    """acc[p, q] = Σ_r A[p, r] · B[r, q] over one tile, and rowsum[p] = Σ_r A[p, r].

    ``offs_p`` / ``offs_q`` must already lie inside A's rows and B's columns (callers wrap
    them), so only the reduction dimension is masked. Offsets are int64: a row stride times
    a row index can pass 2^31. ``rowsum`` is dead code (removed by the compiler) for callers
    that ignore it.
    """
    offs_r = tl.arange(0, BLOCK_R)
    a_rows = A + offs_p[:, None].to(tl.int64) * stride_a_p
    b_cols = B + offs_q[None, :].to(tl.int64) * stride_b_q
    acc = tl.zeros((BLOCK_P, BLOCK_Q), dtype=ACC_DTYPE)
    rowsum = tl.zeros((BLOCK_P,), dtype=ACC_DTYPE)
    for r in range(0, tl.cdiv(R, BLOCK_R)):
        # The reduction offset is rebuilt in int64 each step rather than stepped by
        # BLOCK_R * stride, which is 32-bit and overflows for a transposed operand whose
        # reduction stride passes 2^31 / BLOCK_R.
        offs_k = (r * BLOCK_R + offs_r).to(tl.int64)
        a = tl.load(a_rows + offs_k[None, :] * stride_a_r, mask=offs_k[None, :] < R, other=0.0)
        b = tl.load(b_cols + offs_k[:, None] * stride_b_r, mask=offs_k[:, None] < R, other=0.0)
        rowsum += tl.sum(a.to(ACC_DTYPE), axis=1)
        if UPCAST:  # the interpreter computes bf16 on bit patterns: do the math in fp32
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        if ALLOW_TF32:
            acc = tl.dot(a, b, acc, input_precision="tf32", out_dtype=ACC_DTYPE)
        else:
            acc = tl.dot(a, b, acc, input_precision="ieee", out_dtype=ACC_DTYPE)
    return acc, rowsum


@triton.jit
def _linear_act_fwd_kernel(
    # pointers
    X, W, BIAS, Y, Z,
    # sizes
    M, N, K,
    # strides (y and z share theirs)
    stride_x_m, stride_x_k, stride_w_n, stride_w_k, stride_y_m, stride_y_n,
    # leaky_relu's negative_slope or elu's alpha
    param,
    # meta
    ACTIVATION: tl.constexpr, HAS_BIAS: tl.constexpr, STORE_PREACT: tl.constexpr,
    ACC_DTYPE: tl.constexpr, ALLOW_TF32: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    pid_m, pid_n = _grouped_tile(tl.program_id(0), M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    # W^T is read through W's strides: B[k, n] = W[n, k].
    acc, _ = _matmul_tile(X, W, offs_m % M, offs_n % N, K,
                          stride_x_m, stride_x_k, stride_w_k, stride_w_n,
                          ACC_DTYPE, ALLOW_TF32, UPCAST, BLOCK_M, BLOCK_N, BLOCK_K)
    if HAS_BIAS:
        bias = tl.load(BIAS + offs_n, mask=offs_n < N, other=0.0)
        acc += bias.to(ACC_DTYPE)[None, :]
    out_offsets = offs_m[:, None].to(tl.int64) * stride_y_m + offs_n[None, :].to(tl.int64) * stride_y_n
    out_mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if STORE_PREACT:
        tl.store(Z + out_offsets, acc.to(Z.dtype.element_ty), mask=out_mask)
    y = apply_activation(acc, ACTIVATION, param)
    tl.store(Y + out_offsets, y.to(Y.dtype.element_ty), mask=out_mask)


@triton.jit
def _act_grad_kernel(
    # pointers (contiguous, same numel)
    DY, SAVED, DZ,
    # sizes
    numel,
    # leaky_relu's negative_slope or elu's alpha
    param,
    # meta
    ACTIVATION: tl.constexpr, FROM_OUTPUT: tl.constexpr, ACC_DTYPE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    dy = tl.load(DY + offsets, mask=mask, other=0.0).to(ACC_DTYPE)
    saved = tl.load(SAVED + offsets, mask=mask, other=0.0).to(ACC_DTYPE)
    dz = dy * activation_grad(saved, ACTIVATION, param, FROM_OUTPUT)
    tl.store(DZ + offsets, dz.to(DZ.dtype.element_ty), mask=mask)


@triton.jit
def _matmul_rowsum_kernel(
    # pointers
    A, B, C, ROWSUM,
    # sizes: C[P, Q] = A[P, R] @ B[R, Q]
    P, Q, R,
    # strides
    stride_a_p, stride_a_r, stride_b_r, stride_b_q, stride_c_p, stride_c_q,
    # meta
    WRITE_ROWSUM: tl.constexpr, ACC_DTYPE: tl.constexpr, ALLOW_TF32: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
):
    """Backward matmuls: dX = dZ @ W, and dW = dZ^T @ X with db = Σ_rows dZ (ROWSUM)."""
    pid_p, pid_q = _grouped_tile(tl.program_id(0), P, Q, BLOCK_M, BLOCK_N, GROUP_M)
    offs_p = pid_p * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_q = pid_q * BLOCK_N + tl.arange(0, BLOCK_N)
    acc, rowsum = _matmul_tile(A, B, offs_p % P, offs_q % Q, R,
                               stride_a_p, stride_a_r, stride_b_r, stride_b_q,
                               ACC_DTYPE, ALLOW_TF32, UPCAST, BLOCK_M, BLOCK_N, BLOCK_K)
    c_offsets = offs_p[:, None].to(tl.int64) * stride_c_p + offs_q[None, :].to(tl.int64) * stride_c_q
    tl.store(C + c_offsets, acc.to(C.dtype.element_ty),
             mask=(offs_p[:, None] < P) & (offs_q[None, :] < Q))
    if WRITE_ROWSUM:
        # Every column tile sums the same rows; the first one writes, so no atomics are needed.
        if pid_q == 0:
            tl.store(ROWSUM + offs_p, rowsum.to(ROWSUM.dtype.element_ty), mask=offs_p < P)


# ----------------------------------------------------------------------- config space

def _cfg(block_m, block_n, block_k, num_warps, num_stages, group_m=8):
    return Config.make(num_warps=num_warps, num_stages=num_stages, BLOCK_M=block_m,
                       BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=group_m)


#: The matmul config space, shared by the forward and the backward matmul kernels. Every
#: config has BLOCK_M >= 64 and >= 4 warps, which Hopper's wgmma needs.
MATMUL_CONFIGS = [
    _cfg(64, 64, 32, 4, 3),      # small problems; also the interpreter's config
    _cfg(128, 256, 64, 8, 3),
    _cfg(128, 128, 64, 8, 4),
    _cfg(128, 128, 32, 4, 4),
    _cfg(128, 64, 32, 4, 4),
    _cfg(64, 128, 32, 4, 4),
    _cfg(128, 256, 32, 8, 3),    # fp32 (tf32) and sm_80: less shared memory per stage
    _cfg(64, 64, 64, 4, 4),
]
INTERPRETER_CONFIG = MATMUL_CONFIGS[0]
ELEMENTWISE_BLOCK = 1024


def shared_memory_bytes(config: Config, itemsize: int) -> int:
    """Estimated shared memory of a matmul config: one A and one B tile per pipeline stage."""
    meta = config.meta()
    tile = meta["BLOCK_M"] * meta["BLOCK_K"] + meta["BLOCK_K"] * meta["BLOCK_N"]
    return config.num_stages * tile * itemsize


def _keep_config(config: Config, problem: dict) -> bool:
    """Drop configs over the device's shared memory, or with blocks far past the problem,
    or that spill registers in the K loop for this precision (``fusedact aot-report``):
    - 4- and 8-byte operands (fp32, tf32, fp64): no tile with 128 accumulator elements per
      thread (128x128 on 4 warps, 128x256 on 8): with the rowsum (db) they spill inside the
      K loop on sm_80 and sm_90, and the gelu epilogue spills >5% of the instructions.
    - dots without tensor cores (fp32 with tf32 off, fp64: FMA on register operands): only
      BLOCK_M <= 64 and BLOCK_K <= 32 (128x64x32 with the rowsum and 64x64x64 spill in the
      loop on sm_80).
    """
    meta = config.meta()
    if shared_memory_bytes(config, problem["itemsize"]) > problem["max_shared_memory"]:
        return False
    if problem["itemsize"] >= 4:
        if meta["BLOCK_M"] * meta["BLOCK_N"] >= 128 * 32 * config.num_warps:
            return False
        if not problem.get("tensor_cores", True) and (meta["BLOCK_M"] > 64 or meta["BLOCK_K"] > 32):
            return False
    return (meta["BLOCK_M"] <= 2 * max(64, bucket(problem["P"]))
            and meta["BLOCK_N"] <= 2 * max(64, bucket(problem["Q"]))
            and meta["BLOCK_K"] <= 2 * max(32, bucket(problem["R"])))


def _heuristic_config(configs, problem: dict) -> Config:
    """Without timing: the largest tile that still gives every SM (132 on an H100) a program."""
    def tiles(config):
        meta = config.meta()
        return triton.cdiv(problem["P"], meta["BLOCK_M"]) * triton.cdiv(problem["Q"], meta["BLOCK_N"])

    def area(config):
        meta = config.meta()
        return meta["BLOCK_M"] * meta["BLOCK_N"] * meta["BLOCK_K"]

    filling = [c for c in configs if tiles(c) >= 132]
    if filling:
        return max(filling, key=lambda c: (area(c), -c.num_stages))
    return min(configs, key=area)


# kernel=: the cache key hashes the kernel's source and the jit helpers it calls.
FORWARD_TUNER = Tuner("linear_act_fwd", MATMUL_CONFIGS, INTERPRETER_CONFIG,
                      _keep_config, _heuristic_config, kernel=_linear_act_fwd_kernel)
MATMUL_TUNER = Tuner("matmul_rowsum", MATMUL_CONFIGS, INTERPRETER_CONFIG,
                     _keep_config, _heuristic_config, kernel=_matmul_rowsum_kernel)


# ------------------------------------------------------------------------- launchers

_max_shared_memory: dict = {}


def _alloc(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Every output buffer comes from here, through ``torch.empty`` (the tests make that
    NaN-filled to catch elements a kernel fails to write)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _problem(P, Q, R, tensor: torch.Tensor) -> dict:
    if tensor.is_cuda and not INTERPRETED:
        index = tensor.device.index if tensor.device.index is not None else torch.cuda.current_device()
        if index not in _max_shared_memory:
            props = triton.runtime.driver.active.utils.get_device_properties(index)
            _max_shared_memory[index] = props["max_shared_mem"]
        max_shared = _max_shared_memory[index]
    else:
        max_shared = 1 << 30
    tensor_cores = (tensor.dtype in (torch.float16, torch.bfloat16)
                    or (tensor.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32))
    return {"P": P, "Q": Q, "R": R, "itemsize": tensor.element_size(),
            "max_shared_memory": max_shared, "tensor_cores": tensor_cores}


def _common_meta(tensor: torch.Tensor) -> dict:
    return {
        "ACC_DTYPE": acc_dtype(tensor.dtype),
        # torch's own switch decides whether fp32 matmuls may use tf32, as for F.linear.
        "ALLOW_TF32": tensor.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32,
        "UPCAST": INTERPRETED and tensor.dtype == torch.bfloat16,
    }


def _launch_tuned(tuner: Tuner, kernel, key: tuple, problem: dict, grid_of, args: tuple,
                  meta: dict) -> None:
    def run(config: Config) -> None:
        kernel[grid_of(config)](*args, **meta, **config.meta(),
                                num_warps=config.num_warps, num_stages=config.num_stages)

    run(tuner.choose(key, problem, run))


def _matmul_grid(P, Q):
    return lambda config: (triton.cdiv(P, config.meta()["BLOCK_M"]) * triton.cdiv(Q, config.meta()["BLOCK_N"]),)


@interpreter_serialized
def linear_act_forward(x: torch.Tensor, weight: torch.Tensor, bias, activation: str,
                       param: float, store_preact: bool):
    """y = act(x @ weight^T + bias) for x [M, K] (any strides), weight [N, K], bias [N] or None.

    Returns (y, z): y [M, N] contiguous in x's dtype; z the pre-activation [M, N] if
    ``store_preact`` else an empty tensor. M, N >= 1.
    """
    M, K = x.shape
    N = weight.shape[0]
    if bias is not None:
        bias = bias.contiguous()  # the kernel reads bias[n] at offset n (strided, expanded: copied)
    y = _alloc((M, N), x.dtype, x.device)
    z = _alloc((M, N) if store_preact else (0,), x.dtype, x.device)
    args = (x, weight, bias if bias is not None else y, y, z if store_preact else y,
            M, N, K, x.stride(0), x.stride(1), weight.stride(0), weight.stride(1),
            y.stride(0), y.stride(1), float(param))
    meta = dict(ACTIVATION=CODES[activation], HAS_BIAS=bias is not None,
                STORE_PREACT=store_preact, **_common_meta(x))
    key = (str(x.dtype), bucket(M), N, K, meta["ALLOW_TF32"])  # tf32 changes what is kept
    _launch_tuned(FORWARD_TUNER, _linear_act_fwd_kernel, key, _problem(M, N, K, x),
                  _matmul_grid(M, N), args, meta)
    return y, z


@interpreter_serialized
def act_grad(grad_output: torch.Tensor, saved: torch.Tensor, activation: str, param: float,
             from_output: bool) -> torch.Tensor:
    """dZ = grad_output ⊙ act'(saved), same shape and dtype as ``saved``; saved is y or z."""
    grad_output = grad_output.contiguous()
    saved = saved.contiguous()
    grad_preact = _alloc(saved.shape, saved.dtype, saved.device)
    numel = saved.numel()
    grid = (triton.cdiv(numel, ELEMENTWISE_BLOCK),)
    _act_grad_kernel[grid](grad_output, saved, grad_preact, numel, float(param),
                           ACTIVATION=CODES[activation], FROM_OUTPUT=from_output,
                           ACC_DTYPE=acc_dtype(saved.dtype),
                           BLOCK=ELEMENTWISE_BLOCK, num_warps=4)
    return grad_preact


@interpreter_serialized
def matmul_rowsum(a: torch.Tensor, b: torch.Tensor, out_dtype: torch.dtype, rowsum: bool):
    """c = a @ b (a [P, R], b [R, Q], any strides), fp32 accumulation (fp64 for fp64), and
    Σ_r a[:, r].

    Returns (c [P, Q] contiguous in ``out_dtype``, rowsum [P] in ``out_dtype`` or None).
    P, Q >= 1; R may be 0 (c is then zero).
    """
    P, R = a.shape
    Q = b.shape[1]
    c = _alloc((P, Q), out_dtype, a.device)
    sums = _alloc((P,), out_dtype, a.device) if rowsum else c
    args = (a, b, c, sums, P, Q, R, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
            c.stride(0), c.stride(1))
    meta = dict(WRITE_ROWSUM=rowsum, **_common_meta(a))
    key = (str(a.dtype), bucket(P), Q, R, meta["ALLOW_TF32"])
    _launch_tuned(MATMUL_TUNER, _matmul_rowsum_kernel, key, _problem(P, Q, R, a),
                  _matmul_grid(P, Q), args, meta)
    return c, (sums if rowsum else None)


# ------------------------------------------------------------ ahead-of-time variants
# Kept at the end of the file: the list below mirrors the launchers above.

def compile_variants():
    """Every launch the launchers above can make, as ``Variant``s for ``fusedact.aot``.

    Coverage (the full constexpr cross product is ~2,600 builds per arch; compile time is
    spent in the matmul main loop, which only the config, dtype and ALLOW_TF32 change, while
    the activation changes only the epilogue, whose register pressure grows with the tile):
    - forward: every MATMUL_CONFIGS entry x {fp16, bf16, fp32 (tf32 and ieee), fp64} with the
      heaviest epilogue (gelu, bias, STORE_PREACT: erf plus two stores); plus every
      activation x both HAS_BIAS x both STORE_PREACT on the config with the largest
      accumulator per thread (the most registers) in bf16 and fp32/tf32; plus each other
      activation once more on another config in fp16, rotating through the configs.
    - act_grad: every activation x FROM_OUTPUT x dtype (elementwise, one block size).
    - matmul_rowsum: every config x dtype x the two operand layouts the backward uses
      (dX = dZ @ W with dZ row-major, no rowsum; dW = dZ^T @ X with dZ^T column-major,
      with the rowsum that gives db; without it in bf16 only, since it only drops a store).
    UPCAST is False (it is True only under the interpreter). ALLOW_TF32 follows
    torch.backends.cuda.matmul.allow_tf32 at launch, so fp32 is built both ways.
    Every arch gets every variant; ``fusedact.aot`` marks the ones the runtime prunes there
    (``keep_variant``: ``_keep_config`` itself, at the arch's shared-memory limit).
    The common launch is described: contiguous tensors (unit strides are constexpr 1, as
    Triton specializes them) and feature sizes / leading strides divisible by 16; M (the
    batch) is not assumed divisible.
    """
    from .variants import Variant

    precisions = [("fp16", False), ("bf16", False), ("fp32", True), ("fp32", False), ("fp64", False)]

    def acc(dtype):
        return tl.float64 if dtype == "fp64" else tl.float32

    def fwd(config, dtype, tf32, activation, has_bias, store_preact):
        pointer = f"*{dtype}"
        constexprs = dict(ACTIVATION=activation, HAS_BIAS=has_bias, STORE_PREACT=store_preact,
                          ACC_DTYPE=acc(dtype), ALLOW_TF32=tf32, UPCAST=False,
                          stride_x_k=1, stride_w_k=1, stride_y_n=1, **config.meta())
        signature = {"X": pointer, "W": pointer, "BIAS": pointer, "Y": pointer, "Z": pointer,
                     "M": "i32", "N": "i32", "K": "i32", "stride_x_m": "i32",
                     "stride_w_n": "i32", "stride_y_m": "i32", "param": "fp32"}
        signature.update({name: "constexpr" for name in constexprs})
        return Variant("linear_act_fwd", _linear_act_fwd_kernel, signature, constexprs,
                       config.num_warps, config.num_stages, dtype,
                       tensor_cores=dtype in ("fp16", "bf16"),
                       divisible_by_16=("N", "K", "stride_x_m", "stride_w_n", "stride_y_m"))

    def largest_accumulator(config):
        meta = config.meta()
        return meta["BLOCK_M"] * meta["BLOCK_N"] / config.num_warps

    variants = []
    heaviest = CODES["gelu"]
    for config in MATMUL_CONFIGS:
        for dtype, tf32 in precisions:
            variants.append(fwd(config, dtype, tf32, heaviest, True, True))
    worst = max(MATMUL_CONFIGS, key=largest_accumulator)
    others = [config for config in MATMUL_CONFIGS if config != worst]
    for code in sorted(set(CODES.values())):
        for has_bias in (False, True):
            for store_preact in (False, True):
                for dtype, tf32 in (("bf16", False), ("fp32", True)):
                    if (code, has_bias, store_preact) != (heaviest, True, True):
                        variants.append(fwd(worst, dtype, tf32, code, has_bias, store_preact))
        if code != heaviest:  # each remaining activation meets another tile shape in fp16
            variants.append(fwd(others[code % len(others)], "fp16", False, code, True, True))

    for code in sorted(set(CODES.values())):
        for from_output in (False, True):
            for dtype in ("fp16", "bf16", "fp32", "fp64"):
                pointer = f"*{dtype}"
                constexprs = dict(ACTIVATION=code, FROM_OUTPUT=from_output, ACC_DTYPE=acc(dtype),
                                  BLOCK=ELEMENTWISE_BLOCK)
                signature = {"DY": pointer, "SAVED": pointer, "DZ": pointer, "numel": "i32",
                             "param": "fp32", **{name: "constexpr" for name in constexprs}}
                variants.append(Variant("act_grad", _act_grad_kernel, signature, constexprs,
                                        4, 3, dtype, divisible_by_16=("numel",)))

    layouts = [  # (unit-stride arguments, WRITE_ROWSUM, dtypes)
        (("stride_a_r", "stride_b_q", "stride_c_q"), False, None),   # dX = dZ @ W
        (("stride_a_p", "stride_b_q", "stride_c_q"), True, None),    # dW, db = dZ^T @ X, Σ dZ
        # dW without bias: the same main loop as the line above, minus the rowsum store.
        (("stride_a_p", "stride_b_q", "stride_c_q"), False, ("bf16",)),
    ]
    all_strides = ("stride_a_p", "stride_a_r", "stride_b_r", "stride_b_q", "stride_c_p", "stride_c_q")
    for config in MATMUL_CONFIGS:
        for dtype, tf32 in precisions:
            for unit_strides, write_rowsum, only in layouts:
                if only is not None and dtype not in only:
                    continue
                pointer = f"*{dtype}"
                constexprs = dict(WRITE_ROWSUM=write_rowsum, ACC_DTYPE=acc(dtype),
                                  ALLOW_TF32=tf32, UPCAST=False,
                                  **{name: 1 for name in unit_strides}, **config.meta())
                strides = [name for name in all_strides if name not in unit_strides]
                signature = {"A": pointer, "B": pointer, "C": pointer, "ROWSUM": pointer,
                             "P": "i32", "Q": "i32", "R": "i32",
                             **{name: "i32" for name in strides},
                             **{name: "constexpr" for name in constexprs}}
                variants.append(Variant("matmul_rowsum", _matmul_rowsum_kernel, signature,
                                        constexprs, config.num_warps, config.num_stages,
                                        dtype,
                                        tensor_cores=dtype in ("fp16", "bf16"),
                                        divisible_by_16=("Q", "R", *strides)))
    return variants


def keep_variant(variant, max_shared_memory: int) -> bool:
    """The launchers' own pruning (``_keep_config``) applied to a Variant, for a problem
    large enough that only shared memory and precision rules can drop a config."""
    if variant.name == "act_grad":
        return True
    meta = variant.constexprs
    config = _cfg(meta["BLOCK_M"], meta["BLOCK_N"], meta["BLOCK_K"], variant.num_warps,
                  variant.num_stages, meta["GROUP_M"])
    problem = {"P": 1 << 16, "Q": 1 << 16, "R": 1 << 16,
               "itemsize": {"fp16": 2, "bf16": 2, "fp32": 4, "fp64": 8}[variant.dtype],
               "max_shared_memory": max_shared_memory,
               "tensor_cores": variant.dtype in ("fp16", "bf16") or bool(meta["ALLOW_TF32"])}
    return _keep_config(config, problem)
