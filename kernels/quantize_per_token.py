"""Per-token int8 quantization in Triton: one program per row.

Same formula as bigaccel.reference.quantize_int8_rowwise, bit for bit:
correctly rounded divisions (div_rn) and round-half-to-even.
"""
import torch
import triton
import triton.language as tl

# Globals a @triton.jit function reads must be constexpr (the interpreter does not check this).
_MIN_AMAX = tl.constexpr(1e-12)  # bigaccel.reference.INT8_MIN_AMAX
_RNE_MAGIC = tl.constexpr(12582912.0)  # 1.5 * 2**23: adding and subtracting it rounds |y| < 2**22 to nearest even


@triton.jit
def _quantize_per_token_kernel(x_ptr, q_ptr, scale_ptr, K, BLOCK_K: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + row * K
    q_row = q_ptr + row * K
    amax = tl.zeros([BLOCK_K], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        amax = tl.maximum(amax, tl.abs(x))
    a = tl.maximum(tl.max(amax, axis=0), _MIN_AMAX)
    inv = tl.math.div_rn(tl.full([], 127.0, tl.float32), a)
    for k0 in range(0, K, BLOCK_K):
        offs = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_row + offs, mask=offs < K, other=0.0).to(tl.float32)
        y = tl.minimum(tl.maximum(x * inv, -127.0), 127.0)
        y = (y + _RNE_MAGIC) - _RNE_MAGIC
        tl.store(q_row + offs, y.to(tl.int8), mask=offs < K)
    tl.store(scale_ptr + row, tl.math.div_rn(a, tl.full([], 127.0, tl.float32)))


@torch.library.triton_op("bigaccel::quantize_per_token_triton", mutates_args=())
def quantize_per_token_triton(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.contiguous()
    k = x.shape[-1]
    q = torch.empty_like(x, dtype=torch.int8)
    scale = x.new_empty((*x.shape[:-1], 1), dtype=torch.float32)
    rows = x.numel() // k if k else 0
    if rows:
        block = min(triton.next_power_of_2(k), 2048)
        torch.library.wrap_triton(_quantize_per_token_kernel)[(rows,)](x, q, scale, k, BLOCK_K=block)
    return q, scale
