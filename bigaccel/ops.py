"""bigaccel's ops: each declared once (schema, fake, reference fallback), with
its Python entry point that checks inputs and runs the backend chosen for the
tensor's device (backends.py).

Kernels attach themselves to these declarations: the C++ extensions register
CPU and CUDA kernels on the dispatch keys; Triton kernels are ops of their own
(``torch.ops.bigaccel.<op>_triton``, in the kernels package). The reference is
registered as the composite kernel, so ``torch.ops.bigaccel.<op>`` runs on any
device even where no extension was built.
"""
from __future__ import annotations

import importlib
from typing import Callable

import torch

from . import _extension, backends, reference

_LIB = torch.library.Library("bigaccel", "DEF")


def _declare(schema: str, fake: Callable, ref: Callable, compiled: tuple[str, ...] = ("cpu", "cuda")) -> str:
    """Define bigaccel::<name> once; `compiled` names the devices whose C++/CUDA kernels exist."""
    name = schema.split("(", 1)[0]
    _LIB.define(schema)
    torch.library.register_fake(f"bigaccel::{name}", fake, lib=_LIB)
    _LIB.impl(name, ref, "CompositeExplicitAutograd")
    op = getattr(torch.ops.bigaccel, name)
    for backend in compiled:
        backends.register(name, backend, lambda: op)
    backends.register(name, "reference", lambda: ref)
    return name


def _triton(name: str, module: str | None = None) -> None:
    """Register bigaccel::<name>_triton, defined in kernels/<module>.py, as the op's Triton backend."""

    def load():
        importlib.import_module(f"bigaccel.kernels.{module or name}")
        return getattr(torch.ops.bigaccel, f"{name}_triton")

    backends.register(name, "triton", load)


_FLOATS = (torch.float32, torch.bfloat16, torch.float16)


def _check_activation(x: torch.Tensor, op: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"bigaccel.{op}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOATS:
        raise TypeError(
            f"bigaccel.{op}: x must be float32, bfloat16 or float16, got {x.dtype}; convert it first, e.g. x.float()"
        )
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"bigaccel.{op}: x must be [..., K] with K > 0, got shape {tuple(x.shape)}")


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


def _int8_mm_fake(a, a_scale, w, w_scale, w_sum=None, bias=None, out_dtype=torch.float32):
    torch._check(a.dim() == 2 and w.dim() == 2, lambda: "int8_mm: a and w must be 2-D")
    torch._check(a.shape[1] == w.shape[1], lambda: f"int8_mm: K mismatch {a.shape} vs {w.shape}")
    return a.new_empty((a.shape[0], w.shape[0]), dtype=out_dtype)


def _int8_weight_only_mm_fake(x, w, w_scale, bias=None):
    torch._check(x.dim() == 2 and w.dim() == 2, lambda: "int8_weight_only_mm: x and w must be 2-D")
    torch._check(x.shape[1] == w.shape[1], lambda: f"int8_weight_only_mm: K mismatch {x.shape} vs {w.shape}")
    return x.new_empty((x.shape[0], w.shape[0]))


def _int8_mm_ref(a, a_scale, w, w_scale, w_sum=None, bias=None, out_dtype=torch.float32):
    return reference.int8_mm(a, a_scale, w, w_scale, bias, out_dtype)


_declare(
    "int8_mm(Tensor a, Tensor a_scale, Tensor w, Tensor w_scale, Tensor? w_sum=None, Tensor? bias=None, "
    "ScalarType out_dtype=float) -> Tensor",
    _int8_mm_fake,
    _int8_mm_ref,
    compiled=("cpu",),
)
_declare(
    "int8_weight_only_mm(Tensor x, Tensor w, Tensor w_scale, Tensor? bias=None) -> Tensor",
    _int8_weight_only_mm_fake,
    reference.int8_weight_only_mm,
    compiled=("cpu",),
)
_triton("int8_mm", "int8_gemm")
_triton("int8_weight_only_mm", "int8_gemm")


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


def int8_linear(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    w_sum: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """W8A8 dynamic linear: quantize ``x [..., K]`` per token, int8 GEMM against
    ``w`` int8 ``[N, K]`` (per-channel ``w_scale`` fp32 ``[N]``), then scale, bias
    and cast back to ``x``'s dtype in the epilogue. ``w_sum`` (int32 ``[N]``, the
    weight's row sums) saves the CPU kernel a pass over the weight."""
    _check_activation(x, "int8_linear")
    _check_int8_weight("int8_linear", x, w, w_scale, bias)
    lead = x.shape[:-1]
    a, a_scale = quantize_per_token(x.reshape(-1, x.shape[-1]))
    out = backends.get("int8_mm", x.device)(a, a_scale, w, w_scale, w_sum, bias, x.dtype)
    return out.reshape(*lead, w.shape[0])


def int8_weight_only_linear(
    x: torch.Tensor, w: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """W8A16 linear: ``x [..., K]`` (fp32/bf16/fp16) against int8 ``w`` ``[N, K]``
    with per-channel ``w_scale``, dequantized inside the kernel; output in ``x``'s dtype."""
    _check_activation(x, "int8_weight_only_linear")
    _check_int8_weight("int8_weight_only_linear", x, w, w_scale, bias)
    lead = x.shape[:-1]
    out = backends.get("int8_weight_only_mm", x.device)(x.reshape(-1, x.shape[-1]).contiguous(), w, w_scale, bias)
    return out.reshape(*lead, w.shape[0])


# Kernels register against the declarations above, so load them last.
_extension.load()
