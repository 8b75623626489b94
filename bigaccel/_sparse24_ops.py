"""The 2:4 sparse linear ops: float values (sparse24_mm) and int8 values with per-token
int8 activations (sparse24_int8_mm), both on the compressed format of
reference.compress_2_4, each declared once with its Python entry point, input checks
and gradient w.r.t. the input (the frozen-layer base of _linear_ops.py).
"""
from __future__ import annotations

import os

import torch

from . import _extension, backends, reference
from ._linear_ops import _check_w_sum, _FrozenLinearGrad, _wants_grad, quantize_per_token
from ._registry import _FLOATS, _LIB, _check_activation, _declare, _triton, _triton_op

# ---------------------------------------------------------------------------
# 2:4 semi-structured sparse GEMM: x [M, K] against the compressed weight of
# reference.compress_2_4 (values [N, K/2], meta uint8 [N, ceil(K/8)])
# ---------------------------------------------------------------------------


def _sparse24_mm_fake(x, values, meta, k, bias=None):
    torch._check(x.dim() == 2 and values.dim() == 2, lambda: "sparse24_mm: x and values must be 2-D")
    torch._check(x.shape[1] == k, lambda: f"sparse24_mm: K mismatch {tuple(x.shape)} vs k={k}")
    return x.new_empty((x.shape[0], values.shape[0]))


def _sparse24_mm_ref(x, values, meta, k, bias=None):
    out = x.float() @ reference.decompress_2_4(values.float(), meta, k).t()
    if bias is not None:
        out = out + bias.float()
    return out.to(x.dtype)


# CUDA: the CUTLASS kernel below where it applies (BIGACCEL_UNVERIFIED_KERNELS=1), else Triton.
_SPARSE24_MM_ARGS = "(Tensor x, Tensor values, Tensor meta, int k, Tensor? bias=None) -> Tensor"
_declare("sparse24_mm" + _SPARSE24_MM_ARGS, _sparse24_mm_fake, _sparse24_mm_ref, compiled=("cpu",))
_triton("sparse24_mm", "sparse24_gemm")


def _check_sparse24_weight(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, k: int, bias,
                           op: str = "sparse24_linear", value_dtypes: tuple = _FLOATS) -> None:
    if k % 4:
        raise ValueError(f"bigaccel.{op}: K={k} is not a multiple of 4; 2:4 sparsity groups K in fours")
    if x.shape[-1] != k:
        raise ValueError(f"bigaccel.{op}: K mismatch: the input's last dimension is {x.shape[-1]} "
                         f"but the weight has in_features={k}")
    if values.dim() != 2 or values.shape[1] != k // 2 or values.dtype not in value_dtypes:
        kinds = "/".join(str(d).replace("torch.", "") for d in value_dtypes)
        raise ValueError(f"bigaccel.{op}: values must be {kinds} [N, K/2={k // 2}], "
                         f"got {values.dtype} {tuple(values.shape)}")
    if meta.dtype != torch.uint8 or tuple(meta.shape) != (values.shape[0], (k + 7) // 8):
        raise ValueError(f"bigaccel.{op}: meta must be uint8 [N, ceil(K/8)]="
                         f"[{values.shape[0]}, {(k + 7) // 8}], got {meta.dtype} {tuple(meta.shape)}")
    if bias is not None and bias.numel() != values.shape[0]:
        raise ValueError(f"bigaccel.{op}: bias must have {values.shape[0]} elements, got {tuple(bias.shape)}")
    for name, t in (("values", values), ("meta", meta), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"bigaccel.{op}: the input is on {x.device} but {name} is on {t.device}")


def _decompress_2_4(values, meta, k):
    return reference.decompress_2_4(values.float(), meta, k)


class _Sparse24LinearGrad(_FrozenLinearGrad):
    @staticmethod
    def forward(x2d, values, meta, k, bias):
        return backends.get("sparse24_mm", x2d.device)(x2d.contiguous(), values, meta, k, bias)

    @staticmethod
    def backward(ctx, grad):
        return _FrozenLinearGrad.frozen_backward(ctx, grad, _decompress_2_4)


def sparse24_linear(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, k: int,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x [..., K]`` times the transposed 2:4 weight held compressed (values
    ``[N, K/2]``, meta uint8 ``[N, ceil(K/8)]``, the format of
    reference.compress_2_4), plus bias; fp32 accumulation, output in ``x``'s
    dtype. Differentiable in ``x`` and ``bias``."""
    _check_activation(x, "sparse24_linear")
    _check_sparse24_weight(x, values, meta, k, bias)
    return _sparse24_linear(x, values, meta, k, bias)


def _sparse24_linear(x, values, meta, k: int, bias) -> torch.Tensor:
    """sparse24_linear after its checks (bigaccel.nn.Sparse24Linear calls it)."""
    x2d = x if x.dim() == 2 else x.reshape(-1, k)
    if _wants_grad(x, bias):
        out = _Sparse24LinearGrad.apply(x2d, values, meta, k, bias)
    else:
        out = backends.get("sparse24_mm", x2d.device)(x2d.contiguous(), values, meta, k, bias)
    return out if x.dim() == 2 else out.reshape(*x.shape[:-1], values.shape[0])


# ---------------------------------------------------------------------------
# 2:4 + int8 (W8A8): per-token int8 activations against the int8 weight held
# compressed (values int8 [N, K/2], the same meta), per-channel weight scales
# ---------------------------------------------------------------------------


def _sparse24_int8_mm_fake(a, a_scale, values, meta, k, w_scale, w_sum=None, bias=None, out_dtype=torch.float32):
    torch._check(a.dim() == 2 and values.dim() == 2, lambda: "sparse24_int8_mm: a and values must be 2-D")
    torch._check(a.shape[1] == k, lambda: f"sparse24_int8_mm: K mismatch {tuple(a.shape)} vs k={k}")
    return a.new_empty((a.shape[0], values.shape[0]), dtype=out_dtype)


def _sparse24_int8_mm_ref(a, a_scale, values, meta, k, w_scale, w_sum=None, bias=None, out_dtype=torch.float32):
    return reference.int8_mm(a, a_scale, reference.decompress_2_4(values, meta, k), w_scale, bias, out_dtype)


# CUDA as for sparse24_mm.
_SPARSE24_INT8_MM_ARGS = ("(Tensor a, Tensor a_scale, Tensor values, Tensor meta, int k, Tensor w_scale, "
                          "Tensor? w_sum=None, Tensor? bias=None, ScalarType out_dtype=float) -> Tensor")
_declare("sparse24_int8_mm" + _SPARSE24_INT8_MM_ARGS, _sparse24_int8_mm_fake, _sparse24_int8_mm_ref,
         compiled=("cpu",))
_triton("sparse24_int8_mm", "sparse24_gemm")


def _check_sparse24_int8_weight(x, values, meta, k, w_scale, bias) -> None:
    if values.dtype != torch.int8:
        raise TypeError(f"bigaccel.sparse24_int8_linear: values must be int8 [N, K/2], got {values.dtype}; "
                        "float values go to sparse24_linear")
    _check_sparse24_weight(x, values, meta, k, bias, op="sparse24_int8_linear", value_dtypes=(torch.int8,))
    if w_scale.dtype != torch.float32 or w_scale.numel() != values.shape[0]:
        raise ValueError(f"bigaccel.sparse24_int8_linear: the weight scale must be float32 with {values.shape[0]} "
                         f"elements, got {w_scale.dtype} {tuple(w_scale.shape)}")
    if w_scale.device != x.device:
        raise ValueError(f"bigaccel.sparse24_int8_linear: the input is on {x.device} but the weight scale is on "
                         f"{w_scale.device}")


def _sparse24_int8_matmul(x2d, values, meta, k, w_scale, w_sum, bias):
    a, a_scale = quantize_per_token(x2d)
    return backends.get("sparse24_int8_mm", x2d.device)(a, a_scale, values, meta, k, w_scale, w_sum, bias, x2d.dtype)


def _dequantize_sparse24_int8(values, meta, k, w_scale, w_sum):
    return reference.decompress_2_4(values.float(), meta, k) * w_scale[:, None]


class _Sparse24Int8LinearGrad(_FrozenLinearGrad):
    @staticmethod
    def forward(x2d, values, meta, k, w_scale, w_sum, bias):
        return _sparse24_int8_matmul(x2d, values, meta, k, w_scale, w_sum, bias)

    @staticmethod
    def backward(ctx, grad):
        return _FrozenLinearGrad.frozen_backward(ctx, grad, _dequantize_sparse24_int8)


def sparse24_int8_linear(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, k: int, w_scale: torch.Tensor,
                         w_sum: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
    """W8A8 with a 2:4 weight: ``x [..., K]`` is quantized per token and multiplied by the
    int8 weight held compressed (``values`` int8 ``[N, K/2]``, ``meta`` as in
    reference.compress_2_4, per-channel ``w_scale`` fp32 ``[N]``), then scaled, biased and
    cast back to ``x``'s dtype as in reference.int8_mm. ``w_sum`` (int32 ``[N]``, the rows'
    sums of values) saves the CPU kernel a pass over the weight. Differentiable in ``x``
    and ``bias`` (straight through the activation quantization)."""
    _check_activation(x, "sparse24_int8_linear")
    _check_sparse24_int8_weight(x, values, meta, k, w_scale, bias)
    _check_w_sum("sparse24_int8_linear", x, w_sum, values.shape[0])
    return _sparse24_int8_linear(x, values, meta, k, w_scale, w_sum, bias)


def _sparse24_int8_linear(x, values, meta, k: int, w_scale, w_sum, bias) -> torch.Tensor:
    """sparse24_int8_linear after its checks (bigaccel.nn.Sparse24Int8Linear calls it)."""
    x2d = x if x.dim() == 2 else x.reshape(-1, k)
    if _wants_grad(x, bias):
        out = _Sparse24Int8LinearGrad.apply(x2d, values, meta, k, w_scale, w_sum, bias)
    else:
        out = _sparse24_int8_matmul(x2d, values, meta, k, w_scale, w_sum, bias)
    return out if x.dim() == 2 else out.reshape(*x.shape[:-1], values.shape[0])


# ---------------------------------------------------------------------------
# CUDA: CUTLASS's 2:4 sparse tensor-core GEMMs (csrc/sparse24_gemm/cutlass_sparse24.cu)
# for the shapes they take, the Triton kernel for the rest. Internal ops with the
# public ops' schemas. Written without a GPU to run on, so they serve the public ops
# only with BIGACCEL_UNVERIFIED_KERNELS=1 until tests/test_gpu.py has passed on one.
# ---------------------------------------------------------------------------

# Below this many rows the tensor cores would mostly multiply padding (the kernel
# pads M to 8 or 16 columns of its 128-wide tile): the Triton kernel's GEMV-like
# tiles serve decode batches.
CUTLASS_MIN_ROWS = 9


def _cutlass_takes_float(x, values, meta, k, bias=None):
    return (x.dtype in (torch.bfloat16, torch.float16) and values.dtype == x.dtype and x.shape[0] >= CUTLASS_MIN_ROWS
            and values.shape[0] % 32 == 0 and k % 64 == 0)


def _cutlass_takes_int8(a, a_scale, values, meta, k, *rest):
    return a.shape[0] >= CUTLASS_MIN_ROWS and values.shape[0] % 16 == 0 and k % 128 == 0


def _cutlass_built() -> bool:
    ext = _extension.load()["cuda"]
    return ext.loaded and hasattr(ext.module, "sparse24_cutlass_meta_offsets")


def _register_cutlass(name: str, args_schema: str, fake, ref, takes) -> None:
    _LIB.define(f"{name}_cutlass{args_schema}")
    torch.library.register_fake(f"bigaccel::{name}_cutlass", fake, lib=_LIB)

    def load():
        try:
            rest = _triton_op(name, "sparse24_gemm")
        except ImportError:  # no triton: the reference takes the shapes CUTLASS does not
            rest = ref
        if not _cutlass_built():  # the CUDA extension was built without nvidia-cutlass
            return rest
        cutlass = getattr(torch.ops.bigaccel, f"{name}_cutlass")

        def run(*args):
            return cutlass(*args) if takes(*args) else rest(*args)

        return run

    if os.environ.get("BIGACCEL_UNVERIFIED_KERNELS") == "1":
        backends.register(name, "cuda", load)


_register_cutlass("sparse24_mm", _SPARSE24_MM_ARGS, _sparse24_mm_fake, _sparse24_mm_ref, _cutlass_takes_float)
_register_cutlass("sparse24_int8_mm", _SPARSE24_INT8_MM_ARGS, _sparse24_int8_mm_fake, _sparse24_int8_mm_ref,
                  _cutlass_takes_int8)
