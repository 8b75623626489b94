"""int4 group-wise weight-only GEMM (W4A16) in Triton, unpacking the 4-bit codes in the kernel.

Reads the canonical layout of bigaccel.reference.quantize_int4 as stored: packed uint8
[N, K/2] (k = 2j in the low nibble of byte j, 2j+1 in the high one), scales fp32 [N, K/G],
zeros uint8 [N, K/G] or none (8). One K step is one group: the tile's codes minus the zero
point (integers in -16..15, exact in bf16/fp16) go through tl.dot in the activation dtype
with fp32 accumulation, and the group's partial sums are scaled in fp32, as in
bigaccel.reference.int4_mm.
"""
import os
from typing import Optional

import torch
import triton
import triton.language as tl

from .activations import epilogue_code
from .int8_gemm import _store_with_bias

_INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


def _configs():
    if _INTERPRETING:  # the interpreter runs every config: keep one
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16}, num_warps=4)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
        for bm, bn, w, s in [(16, 64, 4, 4), (16, 128, 4, 4), (32, 64, 4, 4), (64, 128, 4, 3), (128, 128, 8, 3)]
    ]


@triton.autotune(configs=_configs(), key=["M", "N", "K", "GROUP"])
@triton.jit
def _int4_mm_kernel(x_ptr, packed_ptr, scales_ptr, zeros_ptr, bias_ptr, out_ptr, M, N, K,
                    GROUP: tl.constexpr, HAS_ZEROS: tl.constexpr, HAS_BIAS: tl.constexpr, IEEE: tl.constexpr,
                    ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_g = tl.arange(0, GROUP)
    mask_m, mask_n = offs_m < M, offs_n < N
    groups = K // GROUP
    shift = ((offs_g % 2) * 4)[:, None]  # even k: low nibble, odd k: high nibble
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for g in range(0, groups):
        offs_k = g * GROUP + offs_g
        x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :], mask=mask_m[:, None], other=0.0)
        byte = tl.load(packed_ptr + offs_n[None, :] * (K // 2) + (offs_k // 2)[:, None], mask=mask_n[None, :], other=0)
        codes = ((byte.to(tl.int32) >> shift) & 0xF).to(tl.float32)  # [GROUP, BLOCK_N]
        if HAS_ZEROS:
            zero = tl.load(zeros_ptr + offs_n * groups + g, mask=mask_n, other=0).to(tl.float32)
        else:
            zero = tl.full([BLOCK_N], 8.0, tl.float32)
        w = codes - zero[None, :]
        if IEEE:  # fp32 activations (or the interpreter): no tf32 rounding
            part = tl.dot(x.to(tl.float32), w, input_precision="ieee")
        else:
            part = tl.dot(x, w.to(x.dtype))
        scale = tl.load(scales_ptr + offs_n * groups + g, mask=mask_n, other=0.0)
        acc += part * scale[None, :]
    _store_with_bias(out_ptr, acc, bias_ptr, offs_m, offs_n, M, N, HAS_BIAS, ACT)


@torch.library.triton_op("bigaccel::int4_mm_triton", mutates_args=())
def int4_mm_triton(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: Optional[torch.Tensor],
                   group_size: int, bias: Optional[torch.Tensor] = None, activation: str = "none") -> torch.Tensor:
    m, k = x.shape
    n = packed.shape[0]
    out = x.new_empty((m, n))
    if m and n:
        grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))  # noqa: E731
        torch.library.wrap_triton(_int4_mm_kernel)[grid](
            x.contiguous(), packed.contiguous(), scales.contiguous(),
            zeros.contiguous() if zeros is not None else packed, bias.contiguous() if bias is not None else scales,
            out, m, n, k, GROUP=group_size, HAS_ZEROS=zeros is not None, HAS_BIAS=bias is not None,
            IEEE=x.dtype == torch.float32 or _INTERPRETING, ACT=epilogue_code(activation))
    return out
