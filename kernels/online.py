"""Online normalization (Milakov & Gimelshein, 2018) as ``@triton.jit`` helpers.

Written once, used by ``softmax.py`` and ``kd_loss.py``. A row's softmax statistics are a
running maximum ``m`` and a running sum ``d = Σ exp(z - m)``; a new block of logits z updates
them in one read:

    m' = max(m, max(z))        d' = d · exp(m - m') + Σ exp(z - m')

and two partial results over disjoint column ranges combine the same way:

    m = max(m_a, m_b)          d = d_a · exp(m_a - m) + d_b · exp(m_b - m)

``-inf`` logits (masked classes, and the padding lanes of a block) contribute exactly 0.
While every logit seen so far is ``-inf`` the maximum is ``-inf`` and ``m - m'`` would be
``-inf - -inf = NaN``; the helpers subtract a "safe" maximum (0 in that case) instead, so the
statistics stay (m = -inf, d = 0) and a row of all ``-inf`` ends with d = 0, which makes the
softmax NaN exactly as torch's does.

All math is in the caller's accumulator dtype (fp32, fp64 for fp64). Blocks are
[BLOCK_M, BLOCK_N]: the statistics are [BLOCK_M] vectors, one per row.
"""
import triton
import triton.language as tl


@triton.jit
def safe_max(m):
    """``m`` with ``-inf`` replaced by 0: a shift that never makes ``-inf - -inf``."""
    return tl.where(m == float("-inf"), 0.0, m)


@triton.jit
def online_step(m, d, z):
    """One online update of (m [BLOCK_M], d [BLOCK_M]) by the block z [BLOCK_M, BLOCK_N].

    Returns (m', d', rescale, e): ``rescale = exp(m - m')`` [BLOCK_M] multiplies anything
    accumulated against the old maximum, and ``e = exp(z - m')`` [BLOCK_M, BLOCK_N] are the
    block's unnormalized probabilities (callers that need neither get them for free: unused
    results are dead code).
    """
    m_new = tl.maximum(m, tl.max(z, axis=1))
    shift = safe_max(m_new)
    rescale = tl.exp(m - shift)
    e = tl.exp(z - shift[:, None])
    d_new = d * rescale + tl.sum(e, axis=1)
    return m_new, d_new, rescale, e


@triton.jit
def merge_partials(m_parts, d_parts):
    """Combine per-chunk statistics [BLOCK_M, CHUNKS] into one (m, d) per row.

    Padding chunks must hold (m = -inf, d = 0). The reduction order is fixed by the block
    shape, so the result is the same bits on every run (no atomics).
    """
    m = tl.max(m_parts, axis=1)
    shift = safe_max(m)
    d = tl.sum(d_parts * tl.exp(m_parts - shift[:, None]), axis=1)
    return m, d
