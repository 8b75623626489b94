"""GPTQ and AWQ 4-bit checkpoints -> bigaccel's canonical int4 format (reference.quantize_int4).

GPTQ (AutoGPTQ / GPTQModel, 4 bits):
  qweight int32 [K/8, N]: code(k, n) = (qweight[k // 8, n] >> (4 * (k % 8))) & 0xF   (packed along K)
  qzeros  int32 [K/G, N/8]: z(g, n) = (qzeros[g, n // 8] >> (4 * (n % 8))) & 0xF     (packed along N)
  scales  [K/G, N] (fp16), g_idx int32 [K]: the group of each k (k // G unless act-order)
  w[n, k] = (code(k, n) - (z(g_idx[k], n) + zero_offset)) * scales[g_idx[k], n]
  The "gptq" (v1) checkpoint format stores zero points minus one, so zero_offset=1 (the
  default); "gptq_v2" stores them as they are (zero_offset=0). A v1 zero point can read 16.

  Act-order (desc_act): g_idx is not k // G; each group still holds exactly G k's, but not
  consecutive ones. We permute K: sort k by group (stable), reorder the codes' columns so
  each group is consecutive, and return the permutation, which the layer applies to the
  input (x[..., perm]) before the unchanged group-wise kernel. The alternative, gathering
  one scale per k, would need a per-k format that every kernel reads at 4 bytes per weight
  instead of 4 bytes per group; the gather of x costs M*K reads per call, which at M=1 is
  noise next to the N*K/2 bytes of weight.

AWQ (AutoAWQ, GEMM version, 4 bits):
  qweight int32 [K, N/8] packed along N; qzeros int32 [K/G, N/8]; scales [K/G, N]; no g_idx.
  Within an int32, column 8j + c sits at nibble AWQ_NIBBLE_OF_COLUMN[c] (bits 4*that):
  the packer wrote columns in the order 0, 2, 4, 6, 1, 3, 5, 7.
  w[n, k] = (code(k, n) - z(k // G, n)) * scales[k // G, n]
"""
from __future__ import annotations

import torch

from .. import reference

AWQ_NIBBLE_OF_COLUMN = (0, 4, 1, 5, 2, 6, 3, 7)
_SHIFTS = torch.arange(0, 32, 4, dtype=torch.int32)


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """int32 [..., P] -> int [..., P, 8]: nibble i (bits 4i..4i+3) of each word, as 0..15."""
    return (packed.to(torch.int32)[..., None] >> _SHIFTS.to(packed.device)) & 0xF


def _check(name: str, t: torch.Tensor, shape: tuple) -> None:
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(getattr(t, 'shape', ()))}")
    if name != "scales" and t.dtype != torch.int32:
        raise ValueError(f"{name} must be int32 (packed 4-bit), got {t.dtype}")


def gptq_to_canonical(qweight, qzeros, scales, g_idx=None, group_size: int = 128, zero_offset: int = 1):
    """Returns (packed, scales, zeros, perm): canonical tensors, and the input permutation
    (None unless act-order) such that ``layer(x) = int4 GEMM(x[..., perm])``."""
    if group_size not in reference.INT4_GROUP_SIZES:
        raise ValueError(f"group_size must be one of {reference.INT4_GROUP_SIZES}, got {group_size}")
    k, n = qweight.shape[0] * 8, qweight.shape[1]
    if k % group_size or n % 8:
        raise ValueError(f"GPTQ weight K={k}, N={n}: K must be a multiple of group_size={group_size} and N of 8")
    groups = k // group_size
    _check("qweight", qweight, (k // 8, n))
    _check("qzeros", qzeros, (groups, n // 8))
    _check("scales", scales, (groups, n))
    codes = _nibbles(qweight).permute(0, 2, 1).reshape(k, n).t()  # [N, K]
    zeros = _nibbles(qzeros).reshape(groups, n).t() + zero_offset  # [N, K/G]
    scales32 = scales.float().t().contiguous()
    perm = None
    if g_idx is not None:
        g_idx = g_idx.to(torch.int64).reshape(-1)
        if g_idx.numel() != k or int(g_idx.min()) < 0 or int(g_idx.max()) >= groups:
            raise ValueError(f"g_idx must hold K={k} group indices in 0..{groups - 1}")
        if not torch.equal(g_idx, torch.arange(k, device=g_idx.device) // group_size):
            if not bool((torch.bincount(g_idx, minlength=groups) == group_size).all()):
                raise ValueError(f"act-order g_idx must put exactly group_size={group_size} k's in each group")
            perm = torch.sort(g_idx, stable=True).indices
            codes = codes[:, perm]
    if int(zeros.max()) > 255:
        raise ValueError("zero points out of range")
    packed = reference.pack_int4(codes.to(torch.uint8).contiguous())
    return packed, scales32, zeros.to(torch.uint8).contiguous(), perm


def awq_to_canonical(qweight, qzeros, scales, group_size: int = 128):
    """Returns (packed, scales, zeros) in the canonical format."""
    if group_size not in reference.INT4_GROUP_SIZES:
        raise ValueError(f"group_size must be one of {reference.INT4_GROUP_SIZES}, got {group_size}")
    k, n = qweight.shape[0], qweight.shape[1] * 8
    if k % group_size:
        raise ValueError(f"AWQ weight K={k} is not a multiple of group_size={group_size}")
    groups = k // group_size
    _check("qweight", qweight, (k, n // 8))
    _check("qzeros", qzeros, (groups, n // 8))
    _check("scales", scales, (groups, n))
    order = list(AWQ_NIBBLE_OF_COLUMN)
    codes = _nibbles(qweight)[..., order].reshape(k, n).t()  # [N, K]
    zeros = _nibbles(qzeros)[..., order].reshape(groups, n).t()
    packed = reference.pack_int4(codes.to(torch.uint8).contiguous())
    return packed, scales.float().t().contiguous(), zeros.to(torch.uint8).contiguous()
