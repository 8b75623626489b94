"""Plain-PyTorch definitions of every bigaccel format and op.

This module is the single source of truth: each packed layout is defined here,
save/load uses these layouts, and every kernel (CPU C++, CUDA, Triton) is tested
against these functions. Nothing here is fast; everything here is exact about
what the formats mean.

Conventions: a linear weight is ``[N, K]`` (out_features, in_features), as in
``nn.Linear``; activations are ``[..., K]``; all arithmetic that defines a
format is float32.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "INT8_MIN_AMAX",
    "quantize_int8_rowwise",
    "quantize_per_token",
    "quantize_per_channel_int8",
    "dequantize_int8_rowwise",
    "int8_mm",
    "int8_weight_only_mm",
    "INT16_ACTIVATION_BLOCK",
    "quantize_activations_int16",
    "dequantize_activations_int16",
    "INT4_GROUP_SIZES",
    "quantize_int4",
    "pack_int4",
    "unpack_int4",
    "dequantize_int4",
    "int4_mm",
    "is_2_4_sparse",
    "compress_2_4",
    "decompress_2_4",
    "silu_and_mul",
    "gelu_and_mul",
    "gelu",
    "ACTIVATIONS",
    "bias_act",
    "silu_and_mul_backward",
    "gelu_and_mul_backward",
    "gelu_backward",
    "bias_act_backward",
]

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# ---------------------------------------------------------------------------
# int8, symmetric, one scale per row
# ---------------------------------------------------------------------------

INT8_MIN_AMAX = 1e-12
"""Rows whose max |x| is smaller are scaled as if it were this, so that an
all-zero row gives zeros and a finite scale."""


def quantize_int8_rowwise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization with one fp32 scale per row (last dim).

    ``amax = max(max_k |x[..., k]|, INT8_MIN_AMAX)`` in fp32, then
    ``q = clamp(round_half_even(x * (127 / amax)), -127, 127)`` as int8 and
    ``scale = amax / 127``, each division one correctly rounded fp32 division
    and the product one fp32 multiply (so backends can match it bit for bit).
    ``x ~= q * scale``; -128 is never produced.

    Returns ``(q, scale)`` with ``q`` int8 of ``x``'s shape and ``scale`` fp32 of
    shape ``[..., 1]``.
    """
    xf = x.float()
    amax = xf.abs().amax(dim=-1, keepdim=True).clamp_min(INT8_MIN_AMAX)
    inv = _div_f32(torch.full_like(amax, 127.0), amax)
    q = torch.round(xf * inv).clamp_(-127, 127).to(torch.int8)
    return q, _div_f32(amax, torch.full_like(amax, 127.0))


def _div_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The correctly rounded fp32 quotient. Computed in fp64 and rounded once more,
    # which is exact for division (53 >= 2*24+2 bits); torch's own `scalar / t`
    # multiplies by a reciprocal instead, and CUDA may do so for `t / scalar`.
    return (a.double() / b.double()).float()


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic per-token quantization of activations ``[..., K]``: the rowwise
    int8 format applied to each token. Returns ``(q int8 [..., K], scale fp32 [..., 1])``."""
    return quantize_int8_rowwise(x)


def quantize_per_channel_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel int8 weight ``[N, K]``: the rowwise format on each row.
    Returns ``(q int8 [N, K], scale fp32 [N])``."""
    q, scale = quantize_int8_rowwise(weight)
    return q, scale.squeeze(-1)


def dequantize_int8_rowwise(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """fp32 ``q * scale``; ``scale`` is ``[..., 1]`` or ``[N]`` (one per row)."""
    if scale.dim() == q.dim() - 1:
        scale = scale.unsqueeze(-1)
    return q.float() * scale


def int8_mm(
    a: torch.Tensor,
    a_scale: torch.Tensor,
    b: torch.Tensor,
    b_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    out_dtype: torch.dtype = torch.float32,
    activation: str = "none",
) -> torch.Tensor:
    """W8A8 GEMM with its epilogue: ``out[m, n] = act(float(acc[m, n]) * (a_scale[m] * b_scale[n]) + bias[n])``.

    ``a`` int8 ``[M, K]`` (per-token quantized activations, ``a_scale`` fp32 ``[M, 1]``),
    ``b`` int8 ``[N, K]`` (per-channel weight, ``b_scale`` fp32 ``[N]``), ``acc`` the exact
    int32 dot product, the epilogue in fp32 (one rounding per operation, in the
    order written), the epilogue ``activation`` (see :func:`epilogue_activation`), then one
    rounding to ``out_dtype``.
    """
    acc = (a.double() @ b.double().t()).float()  # exact: |acc| < 2**31 < 2**53
    out = acc * (a_scale.float().reshape(-1, 1) * b_scale.float().reshape(1, -1))
    if bias is not None:
        out = out + bias.float()
    return epilogue_activation(out, activation).to(out_dtype)


def int8_weight_only_mm(
    x: torch.Tensor, b: torch.Tensor, b_scale: torch.Tensor, bias: torch.Tensor | None = None,
    activation: str = "none",
) -> torch.Tensor:
    """W8A16 GEMM: ``out = act((x @ b.T) * b_scale + bias)`` with the int8 weight ``b`` ``[N, K]``
    dequantized exactly, fp32 accumulation, and one rounding to ``x``'s dtype."""
    out = (x.float() @ b.float().t()) * b_scale.float()
    if bias is not None:
        out = out + bias.float()
    return epilogue_activation(out, activation).to(x.dtype)


# ---------------------------------------------------------------------------
# int16 activations: how the CPU's integer GEMVs hold bf16/fp16 x
# ---------------------------------------------------------------------------

INT16_ACTIVATION_BLOCK = 128


def quantize_activations_int16(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The int16 form of bf16/fp16 activations in the x86 CPU kernels of the weight-only
    GEMMs (W8A16 at M <= 256, W4A16 at M <= 4 or, with groups of 128, M <= 127;
    csrc/common/act_i16.h): per row, each block of 128 consecutive k shares a power-of-two scale ``2^e``, ``e = max(floor(log2 max|x|) - 14, -126)``
    (0 for an all-zero block), and ``q = round_half_even(x / 2^e)``. Returns ``(q int16 [M, K],
    e int32 [M, ceil(K / 128)])``; ``x ~= q * 2^e``, exactly for every element whose ulp is at
    least ``2^e`` (for bf16 those within 2^7 of the block's largest binade), the others off by
    at most ``2^(e-1)``. The kernels' outputs differ from the float computation by at most
    ``|w| @ |x - q 2^e|`` beyond fp32 rounding."""
    m, k = x.shape
    blocks = -(-k // INT16_ACTIVATION_BLOCK)
    x32 = F.pad(x.float(), (0, blocks * INT16_ACTIVATION_BLOCK - k)).view(m, blocks, INT16_ACTIVATION_BLOCK)
    amax = x32.abs().amax(-1)
    _, exp = torch.frexp(amax)  # amax = f * 2^exp with f in [0.5, 1): floor(log2 amax) = exp - 1
    e = torch.where(amax > 0, (exp - 1 - 14).clamp(min=-126), torch.zeros_like(exp)).to(torch.int32)
    q = torch.round(torch.ldexp(x32, -e[..., None].float())).clamp(-32768, 32767).to(torch.int16)
    return q.view(m, -1)[:, :k].contiguous(), e


def dequantize_activations_int16(q: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``q * 2^e`` in fp32, the activations that the int16 GEMVs multiply (see
    :func:`quantize_activations_int16`)."""
    scale = torch.ldexp(torch.ones_like(e, dtype=torch.float32), e.float())
    return q.float() * scale.repeat_interleave(INT16_ACTIVATION_BLOCK, dim=1)[:, : q.shape[1]]


EPILOGUE_ACTIVATIONS = ("none", "silu", "gelu", "gelu_tanh")


def epilogue_activation(out: torch.Tensor, activation: str) -> torch.Tensor:
    """The activation the quantized GEMMs (int8_mm, int8_weight_only_mm, int4_mm) may apply to
    their fp32 result before its rounding: "none", "silu", "gelu" (erf) or "gelu_tanh"."""
    if activation == "none":
        return out
    if activation not in EPILOGUE_ACTIVATIONS:
        raise ValueError(f"activation must be one of {EPILOGUE_ACTIVATIONS}, got {activation!r}")
    return _act(out, activation)


# ---------------------------------------------------------------------------
# int4, group-wise along K
# ---------------------------------------------------------------------------

INT4_GROUP_SIZES = (32, 64, 128)


def quantize_int4(
    weight: torch.Tensor, group_size: int = 128, zero_point: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Round-to-nearest group-wise 4-bit quantization of a weight ``[N, K]``.

    Each row is cut into ``K / group_size`` groups of consecutive k. Per group,
    with ``w`` in fp32:

    - ``zero_point=True`` (asymmetric): ``lo = min(w.min(), 0)``, ``hi = max(w.max(), 0)``,
      ``scale = max(hi - lo, 1e-12) / 15``, ``zero = clamp(round(-lo / scale), 0, 15)``,
      ``code = clamp(round(w / scale) + zero, 0, 15)``.
    - ``zero_point=False`` (symmetric): ``scale = max(max|w|, 1e-12) / 7``, ``zero = 8``
      (implicit), ``code = clamp(round(w / scale), -8, 7) + 8``.

    Either way ``w ~= (code - zero) * scale`` with codes in 0..15 (``round`` is
    half-to-even). Returns ``(packed, scales, zeros)``: ``packed`` uint8
    ``[N, K/2]`` (see :func:`pack_int4`), ``scales`` fp32 ``[N, K/G]``, ``zeros``
    uint8 ``[N, K/G]`` holding 0..15, or ``None`` when symmetric.
    """
    _check_int4_args(weight, group_size)
    n, k = weight.shape
    w = weight.float().reshape(n, k // group_size, group_size)
    if zero_point:
        lo = w.amin(dim=-1).clamp(max=0)
        hi = w.amax(dim=-1).clamp(min=0)
        scales = (hi - lo).clamp(min=1e-12) / 15
        zeros = torch.round(-lo / scales).clamp(0, 15)
        codes = (torch.round(w / scales[..., None]) + zeros[..., None]).clamp(0, 15)
        zeros_out = zeros.to(torch.uint8)
    else:
        scales = w.abs().amax(dim=-1).clamp(min=1e-12) / 7
        codes = torch.round(w / scales[..., None]).clamp(-8, 7) + 8
        zeros_out = None
    return pack_int4(codes.reshape(n, k).to(torch.uint8)), scales, zeros_out


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit codes uint8 ``[N, K]`` (values 0..15, K even) into uint8 ``[N, K/2]``.

    Byte ``j`` of a row holds ``k = 2j`` in its low nibble and ``k = 2j + 1`` in
    its high nibble::

        byte j:  bit 7..4 = code[2j+1]   bit 3..0 = code[2j]
    """
    if codes.dtype != torch.uint8 or codes.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs uint8 codes with an even last dimension, got {codes.dtype} {tuple(codes.shape)}")
    if codes.numel() and int(codes.max()) > 15:
        raise ValueError("pack_int4: codes must be in 0..15")
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: uint8 ``[N, K/2]`` -> codes uint8 ``[N, K]``."""
    low, high = packed & 0xF, packed >> 4
    return torch.stack((low, high), dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


def dequantize_int4(
    packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, group_size: int
) -> torch.Tensor:
    """fp32 weight ``[N, K]`` = ``(code - zero) * scale`` per group (``zero = 8`` when ``zeros is None``)."""
    codes = unpack_int4(packed).float()
    n, k = codes.shape
    zero = 8.0 if zeros is None else zeros.float()[..., None]
    w = (codes.reshape(n, k // group_size, group_size) - zero) * scales.float()[..., None]
    return w.reshape(n, k)


def int4_mm(
    x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None, group_size: int,
    bias: torch.Tensor | None = None, activation: str = "none",
) -> torch.Tensor:
    """W4A16 GEMM: ``out = act(x @ dequantize_int4(...).T + bias)`` with the weight dequantized
    exactly in fp32, fp32 accumulation, and one rounding to ``x``'s dtype."""
    out = x.float() @ dequantize_int4(packed, scales, zeros, group_size).t()
    if bias is not None:
        out = out + bias.float()
    return epilogue_activation(out, activation).to(x.dtype)


def _check_int4_args(weight: torch.Tensor, group_size: int) -> None:
    if group_size not in INT4_GROUP_SIZES:
        raise ValueError(f"int4 group_size must be one of {INT4_GROUP_SIZES}, got {group_size}")
    if weight.dim() != 2:
        raise ValueError(f"int4 quantization needs a 2-D weight [N, K], got shape {tuple(weight.shape)}")
    if weight.shape[1] % group_size:
        raise ValueError(
            f"int4: in_features K={weight.shape[1]} is not a multiple of group_size={group_size}; "
            f"pick a group size that divides K or leave this layer unquantized"
        )


# ---------------------------------------------------------------------------
# 2:4 semi-structured sparsity
# ---------------------------------------------------------------------------


def is_2_4_sparse(weight: torch.Tensor) -> bool:
    """True when every group of 4 consecutive k in each row has at most 2 non-zeros."""
    if weight.shape[-1] % 4:
        return False
    nonzero = (weight != 0).reshape(*weight.shape[:-1], -1, 4).sum(-1)
    return bool((nonzero <= 2).all())


def compress_2_4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Compress a 2:4-sparse weight ``[N, K]`` (K a multiple of 4).

    Each group of 4 along K keeps 2 positions ``i0 < i1``: its non-zeros, then
    (when it has fewer than 2) the lowest-index zeros. Returns:

    - ``values`` ``[N, K/2]``, the weight's dtype: ``w[g*4 + i0], w[g*4 + i1]`` for each group g.
    - ``meta`` uint8 ``[N, ceil(K/8)]``: 4 bits per group, two groups per byte::

          byte j:  bit 7..6 = i1 of group 2j+1   bit 5..4 = i0 of group 2j+1
                   bit 3..2 = i1 of group 2j     bit 1..0 = i0 of group 2j

      (high nibble zero when the row has an odd number of groups). This is the
      per-group 2-bit index pair that mma.sp / CUTLASS consume; GPU backends
      reorder it into their interleaved tile layout at conversion time.

    Relation to the GPU layouts (read from torch/sparse/_semi_structured_conversions.py,
    which ``torch.sparse.to_sparse_semi_structured`` uses for its CUTLASS backend):

    - The nibble per group is the same: ``i0 | i1 << 2`` with ``i0 < i1`` the kept
      positions. For groups with fewer than 2 non-zeros the padding positions differ
      (torch encodes an all-zero group as positions 2, 3; here 0, 1); the padded
      values are zero either way, so the product is the same.
    - torch packs the nibbles of consecutive groups into int16 words (4 groups;
      int32 with 8 groups for int8 values), lowest group in the lowest bits, then
      scatters the words into CUTLASS's ColumnMajorInterleaved<2> order with rows
      interleaved in blocks of 32 (16 for int32) and 2x2 swizzles. Our bytes read as
      little-endian int16 (int32) are those words before the reordering; bigaccel's
      CUDA kernel reorders them per call (csrc/sparse24_gemm/cutlass_sparse24.cu),
      and tests/ops/test_sparse24_gemm.py checks on the CPU that the result equals
      torch's metadata for bf16, fp16 and int8.
    - Unverified: for float32 values torch's CUTLASS path uses the tf32 1:2 pattern
      on pairs; whether a general 2:4 mask maps onto it has not been checked.
    - Values: ours are ``[N, K/2]``, the kept values of each row in k order, equal to
      the values torch's CUTLASS path keeps (the same test).
    """
    if weight.dim() != 2 or weight.shape[1] % 4:
        raise ValueError(f"2:4 needs a 2-D weight with K a multiple of 4, got shape {tuple(weight.shape)}")
    if not is_2_4_sparse(weight):
        raise ValueError("weight is not 2:4 sparse (a group of 4 has more than 2 non-zeros); prune it to 2:4 first")
    n, k = weight.shape
    groups = weight.reshape(n, k // 4, 4)
    position = torch.arange(4, device=weight.device)
    # Non-zeros first, then by position: the two best keys are the kept slots.
    key = (groups != 0).to(torch.int64) * 4 + (3 - position)
    idx = key.topk(2, dim=-1).indices.sort(dim=-1).values
    values = groups.gather(-1, idx).reshape(n, k // 2)
    nibbles = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8)
    if nibbles.shape[1] % 2:
        nibbles = F.pad(nibbles, (0, 1))
    meta = nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)
    return values, meta


def decompress_2_4(values: torch.Tensor, meta: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`compress_2_4`: dense ``[N, k]`` in ``values``' dtype."""
    n = values.shape[0]
    groups = k // 4
    nibbles = torch.stack((meta & 0xF, meta >> 4), dim=-1).reshape(n, -1)[:, :groups].long()
    idx = torch.stack((nibbles & 3, nibbles >> 2), dim=-1)
    dense = torch.zeros(n, groups, 4, dtype=values.dtype, device=values.device)
    dense.scatter_(-1, idx, values.reshape(n, groups, 2))
    return dense.reshape(n, k)


# ---------------------------------------------------------------------------
# Activations: computed in fp32, one rounding to the input dtype at the end
# ---------------------------------------------------------------------------


def _split_gate_up(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape[-1] % 2:
        raise ValueError(f"gated activations need an even last dimension [..., 2*d], got {tuple(x.shape)}")
    d = x.shape[-1] // 2
    return _compute(x[..., :d]), _compute(x[..., d:])


def _compute(x: torch.Tensor) -> torch.Tensor:
    """fp32 for fp32/bf16/fp16 inputs; float64 stays float64 (for gradcheck)."""
    return x if x.dtype == torch.float64 else x.float()


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``x = [gate | up]`` along the last dim -> ``silu(gate) * up``, ``[..., d]``."""
    gate, up = _split_gate_up(x)
    return (F.silu(gate) * up).to(x.dtype)


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``x = [gate | up]`` -> ``gelu(gate, approximate) * up``; approximate is "none" (erf) or "tanh"."""
    gate, up = _split_gate_up(x)
    return (F.gelu(gate, approximate=approximate) * up).to(x.dtype)


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU computed in fp32; approximate is "none" (erf) or "tanh", as in nn.GELU.

    This is F.gelu, whose ``1 + erf`` / ``1 + tanh`` cancel in the negative tail (below x ~ -5 it
    returns 0 in fp32); the kernels compute ``x * erfc(-x / sqrt2) / 2`` and ``x * sigmoid(2z)``
    instead, which keep their relative accuracy there, so they are tested against float64."""
    return F.gelu(_compute(x), approximate=approximate).to(x.dtype)


ACTIVATIONS = ("silu", "gelu", "gelu_tanh")
"""Names bias_act takes: SiLU, GELU (erf) and GELU (tanh approximation)."""


def _act(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "silu":
        return F.silu(x)
    if activation in ("gelu", "gelu_tanh"):
        return F.gelu(x, approximate="tanh" if activation == "gelu_tanh" else "none")
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def _act_derivative(x: torch.Tensor, activation: str) -> torch.Tensor:
    """d act / dx, written out (not autograd) so that gradcheck tests the formula."""
    if activation == "silu":
        s = torch.sigmoid(x)
        return s * (1 + x * (1 - s))
    if activation == "gelu":
        # Phi(x) + x * pdf(x); Phi as erfc keeps its accuracy in the negative tail (ndtr does not)
        return 0.5 * torch.special.erfc(-x * 0.5**0.5) + x * torch.exp(-0.5 * x * x) * (2 * math.pi) ** -0.5
    if activation == "gelu_tanh":
        # 0.5 (1 + tanh z) = s = sigmoid(2z) and 0.5 (1 - tanh^2 z) = 2 s (1 - s)
        # x^2 at most 1e4: beyond |x| = 100 s is 0 or 1 exactly (float64 too), and past |x| ~ 1e19
        # fp32's x^2 overflowed into 0 * inf = nan (F.gelu's own backward is nan there)
        k = math.sqrt(2 / math.pi)
        x2 = (x * x).clamp(max=1e4)
        s = torch.sigmoid(2 * k * x * (1 + 0.044715 * x2))
        return s + 2 * s * (1 - s) * x * k * (1 + 3 * 0.044715 * x2)  # s (1 - s) first: 0 * x, not inf * 0
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def _gelu_name(approximate: str) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return "gelu_tanh" if approximate == "tanh" else "gelu"


def bias_act(x: torch.Tensor, bias: torch.Tensor, activation: str) -> torch.Tensor:
    """``act(x + bias)`` with ``bias [K]`` along the last dim, added in fp32 (one rounding at the end,
    unlike eager low-precision ``act(x + bias)``, which rounds the sum too)."""
    return _act(_compute(x) + _compute(bias), activation).to(x.dtype)


def _gated_backward(grad: torch.Tensor, x: torch.Tensor, activation: str) -> torch.Tensor:
    gate, up = _split_gate_up(x)
    g = _compute(grad)
    d_gate = g * up * _act_derivative(gate, activation)
    d_up = g * _act(gate, activation)
    return torch.cat([d_gate, d_up], dim=-1).to(x.dtype)


def silu_and_mul_backward(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradient of :func:`silu_and_mul` w.r.t. ``x`` (``[..., 2d]``) given ``grad`` (``[..., d]``)."""
    return _gated_backward(grad, x, "silu")


def gelu_and_mul_backward(grad: torch.Tensor, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """Gradient of :func:`gelu_and_mul` w.r.t. ``x``."""
    return _gated_backward(grad, x, _gelu_name(approximate))


def gelu_backward(grad: torch.Tensor, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """Gradient of :func:`gelu` w.r.t. ``x``."""
    return (_compute(grad) * _act_derivative(_compute(x), _gelu_name(approximate))).to(x.dtype)


def bias_act_backward(grad: torch.Tensor, x: torch.Tensor, bias: torch.Tensor, activation: str) -> torch.Tensor:
    """Gradient of :func:`bias_act` w.r.t. ``x`` (= w.r.t. the pre-activation ``x + bias``);
    the bias gradient is its sum over all leading dimensions."""
    return (_compute(grad) * _act_derivative(_compute(x) + _compute(bias), activation)).to(x.dtype)
