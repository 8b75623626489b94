"""Declaring a bigaccel op once: schema, fake (meta) implementation, reference
kernel, and its backends' loaders (backends.py), plus the input checks every op's
Python entry point shares. The op families live in _linear_ops.py, _sparse24_ops.py and
_activation_ops.py; bigaccel.ops is their public face.
"""
from __future__ import annotations

import importlib
from typing import Callable

import torch

from . import backends

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


def _triton_op(name: str, module: str | None = None) -> Callable:
    """bigaccel::<name>_triton, defined (on first use) in kernels/<module>.py."""
    importlib.import_module(f"bigaccel.kernels.{module or name}")
    return getattr(torch.ops.bigaccel, f"{name}_triton")


def _triton(name: str, module: str | None = None) -> None:
    """Register bigaccel::<name>_triton as the op's Triton backend."""
    backends.register(name, "triton", lambda: _triton_op(name, module))


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


def _check_layer_input(x: torch.Tensor, layer: str, in_features: int, weight: torch.Tensor) -> None:
    """What a bigaccel.nn layer checks per call. Its weights were checked when it was built
    (and load_state_dict keeps their shapes); their dtypes and devices the kernels check
    again. Checking them per call cost ~5 us of a decode step's ~20 us per layer."""
    _check_activation(x, f"nn.{layer}")
    if x.shape[-1] != in_features:
        raise ValueError(f"bigaccel.nn.{layer}: K mismatch: the input's last dimension is {x.shape[-1]}, but the layer has "
                         f"in_features={in_features}; pass inputs of shape [..., {in_features}]")
    if x.device != weight.device:
        raise ValueError(f"bigaccel.nn.{layer}: the input is on {x.device} but the layer's weights are on "
                         f"{weight.device}; move one of them, e.g. layer.to(x.device)")
