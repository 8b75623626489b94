"""2:4 sparse GEMMs in Triton (float values, and int8 values for W8A8), decompressing
the weight inside the kernel.

Reads the compressed weight of bigaccel.reference.compress_2_4 as stored
(values [N, K/2], meta uint8 [N, ceil(K/8)], one 4-bit nibble per group of 4:
i0 in bits 0-1, i1 in bits 2-3) and rebuilds each dense [BLOCK_K, BLOCK_N] weight
tile in registers before a dense tl.dot (fp32 accumulation, or int32 for int8). It does not use
sparse tensor cores (Triton has no mma.sp); it saves weight bytes, not FLOPs.
"""
import os
from typing import Optional

import torch
import triton
import triton.language as tl

from .int8_gemm import _grid, _store_w8a8, _store_with_bias

# As in int8_gemm.py: the interpreter's bf16 tl.dot is unreliable, so under it
# (and for fp32 activations) the dot runs in fp32 ("ieee", no tf32).
_INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


def _configs():
    if _INTERPRETING:
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in [(16, 64, 128, 4, 4), (64, 128, 64, 4, 4), (128, 128, 64, 8, 3)]
    ]


@triton.jit
def _dense_weight_tile(values_ptr, meta_ptr, offs_n, offs_k, N, K):
    """The decompressed weight w[k, n] for a [BLOCK_K, BLOCK_N] tile (0 outside), in the values' dtype."""
    valid = (offs_n[None, :] < N) & (offs_k[:, None] < K)
    group = offs_k // 4
    slot = offs_k % 4
    meta_row = (K + 7) // 8
    byte = tl.load(meta_ptr + offs_n[None, :] * meta_row + (group // 2)[:, None], mask=valid, other=0).to(tl.int32)
    nibble = (byte >> ((group % 2) * 4)[:, None]) & 0xF
    i0 = nibble & 3
    i1 = nibble >> 2
    base = values_ptr + offs_n[None, :] * (K // 2) + (2 * group)[:, None]
    v0 = tl.load(base, mask=valid, other=0)
    v1 = tl.load(base + 1, mask=valid, other=0)
    return tl.where(slot[:, None] == i0, v0, tl.where(slot[:, None] == i1, v1, tl.zeros_like(v0)))


@triton.autotune(configs=_configs(), key=["M", "N", "K"])
@triton.jit
def _sparse24_mm_kernel(x_ptr, values_ptr, meta_ptr, bias_ptr, out_ptr, M, N, K, HAS_BIAS: tl.constexpr,
                        IEEE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :],
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)
        w = _dense_weight_tile(values_ptr, meta_ptr, offs_n, offs_k, N, K)
        if IEEE:
            acc += tl.dot(x.to(tl.float32), w.to(tl.float32), input_precision="ieee")
        else:
            acc += tl.dot(x, w.to(x.dtype))
    _store_with_bias(out_ptr, acc, bias_ptr, offs_m, offs_n, M, N, HAS_BIAS, -1)


@torch.library.triton_op("bigaccel::sparse24_mm_triton", mutates_args=())
def sparse24_mm_triton(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, k: int,
                       bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    m = x.shape[0]
    n = values.shape[0]
    out = x.new_empty((m, n))
    if m and n:
        torch.library.wrap_triton(_sparse24_mm_kernel)[_grid(m, n)](
            x.contiguous(), values.contiguous(), meta.contiguous(), bias.contiguous() if bias is not None else values,
            out, m, n, k, HAS_BIAS=bias is not None,
            IEEE=x.dtype == torch.float32 or values.dtype == torch.float32 or _INTERPRETING)
    return out


@triton.autotune(configs=_configs(), key=["M", "N", "K"])
@triton.jit
def _sparse24_int8_mm_kernel(a_ptr, a_scale_ptr, values_ptr, meta_ptr, w_scale_ptr, bias_ptr, out_ptr, M, N, K,
                             HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                             BLOCK_K: tl.constexpr):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + offs_m[:, None] * K + offs_k[None, :],
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0)
        w = _dense_weight_tile(values_ptr, meta_ptr, offs_n, offs_k, N, K)
        acc += tl.dot(a, w, out_dtype=tl.int32)
    _store_w8a8(out_ptr, acc, a_scale_ptr, w_scale_ptr, bias_ptr, offs_m, offs_n, M, N, HAS_BIAS, -1)


@torch.library.triton_op("bigaccel::sparse24_int8_mm_triton", mutates_args=())
def sparse24_int8_mm_triton(a: torch.Tensor, a_scale: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, k: int,
                            w_scale: torch.Tensor, w_sum: Optional[torch.Tensor] = None,
                            bias: Optional[torch.Tensor] = None, out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    m = a.shape[0]
    n = values.shape[0]
    out = a.new_empty((m, n), dtype=out_dtype)
    if m and n:
        torch.library.wrap_triton(_sparse24_int8_mm_kernel)[_grid(m, n)](
            a.contiguous(), a_scale.contiguous(), values.contiguous(), meta.contiguous(), w_scale.contiguous(),
            bias.contiguous() if bias is not None else w_scale, out, m, n, k, HAS_BIAS=bias is not None)
    return out
