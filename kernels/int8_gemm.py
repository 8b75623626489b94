"""int8 GEMMs in Triton: W8A8 (int8 x int8 -> int32 tl.dot, scaled epilogue) and
W8A16 (int8 weights converted to the activation dtype inside the kernel).

Both read the weight as stored, int8 [N, K] row-major, and follow
bigaccel.reference.int8_mm / int8_weight_only_mm.
"""
import os
from typing import Optional

import torch
import triton
import triton.language as tl

from .activations import epilogue, epilogue_code


# Triton 3.8's interpreter returns garbage from a bf16 tl.dot (seen here), so under
# it the W8A16 kernel multiplies in fp32: the same products (bf16 x int8 is exact
# in fp32) and the same fp32 accumulation the GPU's tensor cores do.
_INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


def _configs():
    if _INTERPRETING:  # the interpreter runs every config: keep one
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in [
            (16, 64, 128, 4, 4),
            (32, 64, 128, 4, 4),
            (64, 128, 64, 4, 4),
            (128, 128, 64, 8, 3),
            (128, 256, 64, 8, 3),
        ]
    ]


@triton.jit
def _load_tiles(x_ptr, w_ptr, offs_m, offs_n, k0, M, N, K, BLOCK_K: tl.constexpr):
    offs_k = k0 + tl.arange(0, BLOCK_K)
    x = tl.load(x_ptr + offs_m[:, None] * K + offs_k[None, :], mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0)
    w = tl.load(w_ptr + offs_n[None, :] * K + offs_k[:, None], mask=(offs_n[None, :] < N) & (offs_k[:, None] < K), other=0)
    return x, w


@triton.jit
def _store_with_bias(out_ptr, v, bias_ptr, offs_m, offs_n, M, N, HAS_BIAS: tl.constexpr, ACT: tl.constexpr):
    if HAS_BIAS:
        v = v + tl.load(bias_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    v = epilogue(v, ACT)
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    tl.store(out_ptr + offs_m[:, None] * N + offs_n[None, :], v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _store_w8a8(out_ptr, acc, a_scale_ptr, w_scale_ptr, bias_ptr, offs_m, offs_n, M, N, HAS_BIAS: tl.constexpr,
                ACT: tl.constexpr):
    a_scale = tl.load(a_scale_ptr + offs_m, mask=offs_m < M, other=0.0)
    w_scale = tl.load(w_scale_ptr + offs_n, mask=offs_n < N, other=0.0)
    # reference order: float(acc) * (a_scale * w_scale) + bias
    v = acc.to(tl.float32) * (a_scale[:, None] * w_scale[None, :])
    _store_with_bias(out_ptr, v, bias_ptr, offs_m, offs_n, M, N, HAS_BIAS, ACT)


@triton.autotune(configs=_configs(), key=["M", "N", "K"])
@triton.jit
def _int8_mm_kernel(a_ptr, a_scale_ptr, w_ptr, w_scale_ptr, bias_ptr, out_ptr, M, N, K,
                    HAS_BIAS: tl.constexpr, ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_K: tl.constexpr):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        a, w = _load_tiles(a_ptr, w_ptr, offs_m, offs_n, k0, M, N, K, BLOCK_K)
        acc += tl.dot(a, w, out_dtype=tl.int32)
    _store_w8a8(out_ptr, acc, a_scale_ptr, w_scale_ptr, bias_ptr, offs_m, offs_n, M, N, HAS_BIAS, ACT)


@triton.autotune(configs=_configs(), key=["M", "N", "K"])
@triton.jit
def _int8_weight_only_kernel(x_ptr, w_ptr, w_scale_ptr, bias_ptr, out_ptr, M, N, K, HAS_BIAS: tl.constexpr,
                             IEEE: tl.constexpr, ACT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x, w = _load_tiles(x_ptr, w_ptr, offs_m, offs_n, k0, M, N, K, BLOCK_K)
        if IEEE:  # fp32 activations (or the interpreter): no tf32 rounding
            acc += tl.dot(x.to(tl.float32), w.to(tl.float32), input_precision="ieee")
        else:
            acc += tl.dot(x, w.to(x.dtype))  # exact: int8 values fit bf16 and fp16
    w_scale = tl.load(w_scale_ptr + offs_n, mask=offs_n < N, other=0.0)
    _store_with_bias(out_ptr, acc * w_scale[None, :], bias_ptr, offs_m, offs_n, M, N, HAS_BIAS, ACT)


def _grid(m, n):
    return lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))


@torch.library.triton_op("bigaccel::int8_mm_triton", mutates_args=())
def int8_mm_triton(a: torch.Tensor, a_scale: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor,
                   w_sum: Optional[torch.Tensor] = None, bias: Optional[torch.Tensor] = None,
                   out_dtype: torch.dtype = torch.float32, activation: str = "none") -> torch.Tensor:
    m, k = a.shape
    n = w.shape[0]
    out = a.new_empty((m, n), dtype=out_dtype)
    if m and n:
        torch.library.wrap_triton(_int8_mm_kernel)[_grid(m, n)](
            a.contiguous(), a_scale.contiguous(), w.contiguous(), w_scale.contiguous(),
            bias.contiguous() if bias is not None else w_scale, out, m, n, k, HAS_BIAS=bias is not None,
            ACT=epilogue_code(activation))
    return out


@torch.library.triton_op("bigaccel::int8_weight_only_mm_triton", mutates_args=())
def int8_weight_only_mm_triton(x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor,
                               bias: Optional[torch.Tensor] = None, activation: str = "none") -> torch.Tensor:
    m, k = x.shape
    n = w.shape[0]
    out = x.new_empty((m, n))
    if m and n:
        torch.library.wrap_triton(_int8_weight_only_kernel)[_grid(m, n)](
            x.contiguous(), w.contiguous(), w_scale.contiguous(), bias.contiguous() if bias is not None else w_scale,
            out, m, n, k, HAS_BIAS=bias is not None, IEEE=x.dtype == torch.float32 or _INTERPRETING,
            ACT=epilogue_code(activation))
    return out
