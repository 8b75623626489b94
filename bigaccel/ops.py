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


def _declare(schema: str, fake: Callable, ref: Callable) -> str:
    name = schema.split("(", 1)[0]
    _LIB.define(schema)
    torch.library.register_fake(f"bigaccel::{name}", fake, lib=_LIB)
    _LIB.impl(name, ref, "CompositeExplicitAutograd")
    op = getattr(torch.ops.bigaccel, name)
    backends.register(name, "cpu", lambda: op)
    backends.register(name, "cuda", lambda: op)
    backends.register(name, "reference", lambda: ref)
    return name


def _triton(name: str) -> None:
    def load():
        importlib.import_module(f"bigaccel.kernels.{name}")
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


# Kernels register against the declarations above, so load them last.
_extension.load()
