"""The quantized linear ops: per-token int8 quantization, int8 W8A8 and W8A16 and
int4 W4A16 GEMMs, each declared once (see _registry.py) with its Python entry point,
input checks and gradient w.r.t. the input. The 2:4 ops are in _sparse24_ops.py.
"""
from __future__ import annotations

import torch

from . import backends, reference
from ._registry import _FLOATS, _check_activation, _declare, _triton

# ---------------------------------------------------------------------------
# quantize_per_token: dynamic symmetric int8 per token (row)
# ---------------------------------------------------------------------------


def _quantize_per_token_fake(x):
    torch._check(x.dim() >= 1, lambda: "quantize_per_token: x must have at least one dimension")
    return torch.empty_like(x, dtype=torch.int8), x.new_empty((*x.shape[:-1], 1), dtype=torch.float32)


_declare("quantize_per_token(Tensor x) -> (Tensor, Tensor)", _quantize_per_token_fake, reference.quantize_per_token)
_triton("quantize_per_token")


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize activations ``[..., K]`` to int8 with one fp32 scale per token.

    Returns ``(q int8 [..., K], scale fp32 [..., 1])`` with ``x ~= q * scale``,
    bit-identical on every backend to :func:`bigaccel.reference.quantize_per_token`.
    Any layout is accepted (non-contiguous inputs are copied once).
    """
    _check_activation(x, "quantize_per_token")
    return backends.get("quantize_per_token", x.device)(x.contiguous())


# ---------------------------------------------------------------------------
# int8 GEMMs: W8A8 (per-token activations x per-channel weights) and W8A16
# ---------------------------------------------------------------------------


def _int8_mm_fake(a, a_scale, w, w_scale, w_sum=None, bias=None, out_dtype=torch.float32, activation="none"):
    torch._check(a.dim() == 2 and w.dim() == 2, lambda: "int8_mm: a and w must be 2-D")
    torch._check(a.shape[1] == w.shape[1], lambda: f"int8_mm: K mismatch {a.shape} vs {w.shape}")
    return a.new_empty((a.shape[0], w.shape[0]), dtype=out_dtype)


def _int8_weight_only_mm_fake(x, w, w_scale, bias=None, activation="none"):
    torch._check(x.dim() == 2 and w.dim() == 2, lambda: "int8_weight_only_mm: x and w must be 2-D")
    torch._check(x.shape[1] == w.shape[1], lambda: f"int8_weight_only_mm: K mismatch {x.shape} vs {w.shape}")
    return x.new_empty((x.shape[0], w.shape[0]))


def _int8_mm_ref(a, a_scale, w, w_scale, w_sum=None, bias=None, out_dtype=torch.float32, activation="none"):
    return reference.int8_mm(a, a_scale, w, w_scale, bias, out_dtype, activation)


_declare(
    "int8_mm(Tensor a, Tensor a_scale, Tensor w, Tensor w_scale, Tensor? w_sum=None, Tensor? bias=None, "
    "ScalarType out_dtype=float, str activation=\"none\") -> Tensor",
    _int8_mm_fake,
    _int8_mm_ref,
)
_declare(
    "int8_weight_only_mm(Tensor x, Tensor w, Tensor w_scale, Tensor? bias=None, str activation=\"none\") -> Tensor",
    _int8_weight_only_mm_fake,
    reference.int8_weight_only_mm,
)
_triton("int8_mm", "int8_gemm")
_triton("int8_weight_only_mm", "int8_gemm")


def _check_w_sum(op: str, x: torch.Tensor, w_sum, n: int) -> None:
    if w_sum is not None and (w_sum.dtype != torch.int32 or w_sum.numel() != n or w_sum.device != x.device):
        raise ValueError(f"bigaccel.{op}: w_sum must be int32 with {n} elements (the weight's row sums) on "
                         f"{x.device}, got {w_sum.dtype} {tuple(w_sum.shape)} on {w_sum.device}; or pass None")


def _check_int8_weight(op: str, x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias) -> None:
    if w.dtype != torch.int8 or w.dim() != 2:
        raise TypeError(f"bigaccel.{op}: the weight must be int8 [N, K], got {w.dtype} {tuple(w.shape)}")
    if x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"bigaccel.{op}: K mismatch: the input's last dimension is {x.shape[-1]} but the weight is "
            f"{tuple(w.shape)} (in_features={w.shape[1]})"
        )
    if w_scale.dtype != torch.float32 or w_scale.numel() != w.shape[0]:
        raise ValueError(f"bigaccel.{op}: the weight scale must be float32 with {w.shape[0]} elements")
    if bias is not None and bias.numel() != w.shape[0]:
        raise ValueError(f"bigaccel.{op}: bias must have {w.shape[0]} elements, got {tuple(bias.shape)}")
    for name, t in (("weight", w), ("weight scale", w_scale), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"bigaccel.{op}: the input is on {x.device} but the {name} is on {t.device}; move both to one device")


def _int8_matmul(x2d: torch.Tensor, w, w_scale, w_sum, bias, weight_only: bool, activation: str = "none"):
    if weight_only:
        return backends.get("int8_weight_only_mm", x2d.device)(x2d.contiguous(), w, w_scale, bias, activation)
    a, a_scale = quantize_per_token(x2d)
    return backends.get("int8_mm", x2d.device)(a, a_scale, w, w_scale, w_sum, bias, x2d.dtype, activation)


def _epilogue_name(op: str, activation: str | None) -> str:
    name = "none" if activation is None else activation
    if name not in reference.EPILOGUE_ACTIVATIONS:
        raise ValueError(f"bigaccel.{op}: activation must be None or one of "
                         f"{reference.EPILOGUE_ACTIVATIONS[1:]} (applied in the GEMM's epilogue), got {activation!r}")
    return name


def _autograd_activation(out: torch.Tensor, activation: str) -> torch.Tensor:
    # Training takes the unfused path: the kernel's output, then the activation with autograd.
    return reference.epilogue_activation(out.float(), activation).to(out.dtype) if activation != "none" else out


def _wants_grad(x: torch.Tensor, bias: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or (bias is not None and bias.requires_grad))


class _FrozenLinearGrad(torch.autograd.Function):
    """Gradients through a frozen quantized or compressed layer, so that converted layers
    can sit in a model that is trained around them (adapters, prompt tuning): the weight
    gets none, W8A8's activation quantization is passed straight through, and d out / d x
    is the float weight the kernel multiplies by, rebuilt in backward by `dense_weight`
    (not kept, so memory stays compressed). A subclass's inputs are (x2d, *weight, bias)."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        *weight, bias = inputs[1:]
        ctx.tensor_slots = [i for i, a in enumerate(weight) if isinstance(a, torch.Tensor)]
        ctx.save_for_backward(*(weight[i] for i in ctx.tensor_slots))
        ctx.constants = [None if isinstance(a, torch.Tensor) else a for a in weight]
        ctx.bias_dtype = bias.dtype if bias is not None else None

    @staticmethod
    def frozen_backward(ctx, grad, dense_weight):
        weight = list(ctx.constants)
        for i, t in zip(ctx.tensor_slots, ctx.saved_tensors):
            weight[i] = t
        grad32 = grad.float()
        grad_x = (grad32 @ dense_weight(*weight)).to(grad.dtype) if ctx.needs_input_grad[0] else None
        grad_bias = grad32.sum(0).to(ctx.bias_dtype) if ctx.needs_input_grad[-1] else None
        return (grad_x, *([None] * len(weight)), grad_bias)


def _dequantize_int8(w, w_scale, w_sum, weight_only):
    return w.float() * w_scale[:, None]


class _Int8LinearGrad(_FrozenLinearGrad):
    @staticmethod
    def forward(x2d, w, w_scale, w_sum, weight_only, bias):
        return _int8_matmul(x2d, w, w_scale, w_sum, bias, weight_only)

    @staticmethod
    def backward(ctx, grad):
        return _FrozenLinearGrad.frozen_backward(ctx, grad, _dequantize_int8)


def _int8_linear(x, w, w_scale, w_sum, bias, weight_only: bool, activation: str) -> torch.Tensor:
    """int8_linear and int8_weight_only_linear after their checks (bigaccel.nn's layers call it)."""
    x2d = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
    if _wants_grad(x, bias):
        out = _autograd_activation(_Int8LinearGrad.apply(x2d, w, w_scale, w_sum, weight_only, bias), activation)
    else:
        out = _int8_matmul(x2d, w, w_scale, w_sum, bias, weight_only, activation)
    return out if x.dim() == 2 else out.reshape(*x.shape[:-1], w.shape[0])


def int8_linear(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    w_sum: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
) -> torch.Tensor:
    """W8A8 dynamic linear: quantize ``x [..., K]`` per token, int8 GEMM against
    ``w`` int8 ``[N, K]`` (per-channel ``w_scale`` fp32 ``[N]``), then scale, bias,
    the optional ``activation`` ("silu", "gelu", "gelu_tanh") and the cast back to
    ``x``'s dtype in the epilogue. ``w_sum`` (int32 ``[N]``, the weight's row sums)
    saves the CPU kernel a pass over the weight. Differentiable in ``x`` and ``bias``
    (straight through the activation quantization)."""
    _check_activation(x, "int8_linear")
    _check_int8_weight("int8_linear", x, w, w_scale, bias)
    _check_w_sum("int8_linear", x, w_sum, w.shape[0])
    return _int8_linear(x, w, w_scale, w_sum, bias, False, _epilogue_name("int8_linear", activation))


def int8_weight_only_linear(
    x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None,
    activation: str | None = None,
) -> torch.Tensor:
    """W8A16 linear: ``x [..., K]`` (fp32/bf16/fp16) against int8 ``w`` ``[N, K]``
    with per-channel ``w_scale``, dequantized inside the kernel, the optional epilogue
    ``activation``; output in ``x``'s dtype. Differentiable in ``x`` and ``bias``."""
    _check_activation(x, "int8_weight_only_linear")
    _check_int8_weight("int8_weight_only_linear", x, w, w_scale, bias)
    return _int8_linear(x, w, w_scale, None, bias, True, _epilogue_name("int8_weight_only_linear", activation))


# ---------------------------------------------------------------------------
# int4 group-wise weight-only GEMM (W4A16), canonical format of reference.quantize_int4
# ---------------------------------------------------------------------------


def _int4_mm_fake(x, packed, scales, zeros, group_size, bias=None, activation="none"):
    torch._check(x.dim() == 2 and packed.dim() == 2, lambda: "int4_mm: x and packed must be 2-D")
    torch._check(x.shape[1] == packed.shape[1] * 2, lambda: f"int4_mm: K mismatch {x.shape} vs packed {packed.shape}")
    return x.new_empty((x.shape[0], packed.shape[0]))


_declare(
    "int4_mm(Tensor x, Tensor packed, Tensor scales, Tensor? zeros, int group_size, Tensor? bias=None, "
    "str activation=\"none\") -> Tensor",
    _int4_mm_fake,
    reference.int4_mm,
)
_triton("int4_mm", "int4_gemm")


def _check_int4_weight(op: str, x: torch.Tensor, packed, scales, zeros, group_size: int, bias) -> None:
    if group_size not in reference.INT4_GROUP_SIZES:
        raise ValueError(f"bigaccel.{op}: group_size must be one of {reference.INT4_GROUP_SIZES}, got {group_size}")
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.dim() != 2:
        raise TypeError(f"bigaccel.{op}: the packed weight must be uint8 [N, K/2] (two 4-bit codes a byte), got "
                        f"{getattr(packed, 'dtype', type(packed).__name__)} {tuple(getattr(packed, 'shape', ()))}")
    n, k = packed.shape[0], packed.shape[1] * 2
    if x.shape[-1] != k:
        raise ValueError(f"bigaccel.{op}: K mismatch: the input's last dimension is {x.shape[-1]} but the packed "
                         f"weight {tuple(packed.shape)} holds K={k} (in_features)")
    if k % group_size:
        raise ValueError(f"bigaccel.{op}: K={k} is not a multiple of group_size={group_size}")
    groups = k // group_size
    if scales.dtype != torch.float32 or tuple(scales.shape) != (n, groups):
        raise ValueError(f"bigaccel.{op}: scales must be float32 [N, K/G] = [{n}, {groups}], got "
                         f"{scales.dtype} {tuple(scales.shape)}")
    if zeros is not None and (zeros.dtype != torch.uint8 or tuple(zeros.shape) != (n, groups)):
        raise ValueError(f"bigaccel.{op}: zeros must be uint8 [N, K/G] = [{n}, {groups}] (codes 0..15) or None, "
                         f"got {zeros.dtype} {tuple(zeros.shape)}")
    if bias is not None and bias.numel() != n:
        raise ValueError(f"bigaccel.{op}: bias must have {n} elements, got {tuple(bias.shape)}")
    for name, t in (("packed weight", packed), ("scales", scales), ("zeros", zeros), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"bigaccel.{op}: the input is on {x.device} but the {name} is on {t.device}; "
                             "move both to one device")


def _int4_matmul(x2d, packed, scales, zeros, group_size, bias, activation: str = "none") -> torch.Tensor:
    return backends.get("int4_mm", x2d.device)(x2d.contiguous(), packed, scales, zeros, group_size, bias, activation)


class _Int4LinearGrad(_FrozenLinearGrad):
    @staticmethod
    def forward(x2d, packed, scales, zeros, group_size, bias):
        return _int4_matmul(x2d, packed, scales, zeros, group_size, bias)

    @staticmethod
    def backward(ctx, grad):
        return _FrozenLinearGrad.frozen_backward(ctx, grad, reference.dequantize_int4)


def int4_linear(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
) -> torch.Tensor:
    """W4A16 linear: ``x [..., K]`` (fp32/bf16/fp16) against the int4 weight in the canonical
    format of :func:`bigaccel.reference.quantize_int4` (``packed`` uint8 ``[N, K/2]``, ``scales``
    fp32 ``[N, K/G]``, ``zeros`` uint8 ``[N, K/G]`` or None for symmetric), dequantized inside
    the kernel, fp32 accumulation, the optional epilogue ``activation`` ("silu", "gelu",
    "gelu_tanh"), output in ``x``'s dtype. Differentiable in ``x`` and ``bias``."""
    _check_activation(x, "int4_linear")
    _check_int4_weight("int4_linear", x, packed, scales, zeros, group_size, bias)
    return _int4_linear(x, packed, scales, zeros, group_size, bias, _epilogue_name("int4_linear", activation))


def _int4_linear(x, packed, scales, zeros, group_size: int, bias, activation: str) -> torch.Tensor:
    """int4_linear after its checks (bigaccel.nn.Int4Linear calls it)."""
    x2d = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
    if _wants_grad(x, bias):
        out = _autograd_activation(_Int4LinearGrad.apply(x2d, packed, scales, zeros, group_size, bias), activation)
    else:
        out = _int4_matmul(x2d, packed, scales, zeros, group_size, bias, activation)
    return out if x.dim() == 2 else out.reshape(*x.shape[:-1], packed.shape[0])
