"""The fused activation ops (silu_and_mul, gelu_and_mul, gelu, bias_act), each
declared once (see _registry.py) with its backward op, registered autograd and an
out= variant, and their Python entry points.
"""
from __future__ import annotations

import importlib
from typing import Callable

import torch

from . import backends, reference
from ._registry import _check_activation, _declare

# ---------------------------------------------------------------------------
# Fused activations: silu_and_mul, gelu_and_mul, gelu, bias_act; each with a
# backward op (autograd registered) and an out= variant (<op>_out, mutating).
# ---------------------------------------------------------------------------


def _gated_fake(x, *args):
    torch._check(x.shape[-1] % 2 == 0, lambda: f"gated activations need [..., 2*d], got {tuple(x.shape)}")
    return x.new_empty((*x.shape[:-1], x.shape[-1] // 2))


def _same_shape_fake(x, *args):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _backward_fake(grad, x, *args):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _out_fake(*args):
    return None


def _out_ref(ref: Callable) -> Callable:
    def run(*args):
        *inputs, out = args
        out.copy_(ref(*inputs))

    return run


def _declare_activation(name: str, args: str, forward_fake: Callable, ref: Callable, ref_backward: Callable) -> None:
    """<name>(x, args) -> Tensor, <name>_out(x, args, Tensor(a!) out) -> (), <name>_backward(grad, x, args) -> Tensor."""
    sep = ", " if args else ""
    _declare(f"{name}(Tensor x{sep}{args}) -> Tensor", forward_fake, ref)
    _declare(f"{name}_out(Tensor x{sep}{args}, Tensor(a!) out) -> ()", _out_fake, _out_ref(ref))
    _declare(f"{name}_backward(Tensor grad, Tensor x{sep}{args}) -> Tensor", _backward_fake, ref_backward)
    _register_activation_autograd(f"bigaccel::{name}", name)
    for variant in (name, f"{name}_out", f"{name}_backward"):
        _triton_activation(variant, name)


def _register_activation_autograd(qualname: str, name: str) -> None:
    # Inputs are (x, *rest): rest is (approximate,) or (bias, activation). Only
    # tensors get gradients; the backward op runs on the backend chosen for it.
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*(t for t in inputs if isinstance(t, torch.Tensor)))
        ctx.rest = inputs[1:]

    def backward(ctx, grad):
        x, *bias = ctx.saved_tensors
        rest = ctx.rest
        if bias:  # bias_act(x, bias, activation)
            grad_x = backends.get(f"{name}_backward", x.device)(grad, x, bias[0], rest[1])
            grad_bias = None
            if ctx.needs_input_grad[1]:
                grad_bias = grad_x.reshape(-1, grad_x.shape[-1]).sum(0, dtype=torch.float32).to(bias[0].dtype)
            return grad_x, grad_bias, None
        grad_x = backends.get(f"{name}_backward", x.device)(grad, x, *rest)
        return (grad_x, *(None for _ in rest))

    torch.library.register_autograd(qualname, backward, setup_context=setup_context)


_TRITON_AUTOGRAD: set[str] = set()


def _triton_activation(variant: str, name: str) -> None:
    """The Triton backend of an activation op; forward ops get the same autograd formula."""

    def load():
        importlib.import_module("bigaccel.kernels.activations")
        if variant == name and variant not in _TRITON_AUTOGRAD:
            _register_activation_autograd(f"bigaccel::{variant}_triton", name)
            _TRITON_AUTOGRAD.add(variant)
        return getattr(torch.ops.bigaccel, f"{variant}_triton")

    backends.register(variant, "triton", load)


_declare_activation("silu_and_mul", "", _gated_fake, reference.silu_and_mul, reference.silu_and_mul_backward)
_declare_activation("gelu_and_mul", "str approximate", _gated_fake, reference.gelu_and_mul,
                    reference.gelu_and_mul_backward)
_declare_activation("gelu", "str approximate", _same_shape_fake, reference.gelu, reference.gelu_backward)
_declare_activation("bias_act", "Tensor bias, str activation", _same_shape_fake, reference.bias_act,
                    reference.bias_act_backward)


def _run_activation(name: str, x: torch.Tensor, args: tuple, out: torch.Tensor | None, out_shape) -> torch.Tensor:
    if out is None:
        return backends.get(name, x.device)(x, *args)
    if not isinstance(out, torch.Tensor) or out.dtype != x.dtype or out.device != x.device:
        raise TypeError(f"bigaccel.{name}: out must be a {x.dtype} tensor on {x.device}, got "
                        f"{getattr(out, 'dtype', type(out).__name__)} on {getattr(out, 'device', '-')}")
    if tuple(out.shape) != tuple(out_shape) or not out.is_contiguous():
        raise ValueError(f"bigaccel.{name}: out must be contiguous with shape {tuple(out_shape)}, "
                         f"got {tuple(out.shape)} (contiguous={out.is_contiguous()})")
    if torch.is_grad_enabled() and (x.requires_grad or any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)):
        raise RuntimeError(f"bigaccel.{name}: out= does not support autograd (the inputs require grad); "
                           "call it without out= to train through it, or under torch.no_grad()")
    backends.get(f"{name}_out", x.device)(x, *args, out)
    return out


def _check_gated(x: torch.Tensor, op: str) -> None:
    _check_activation(x, op)
    if x.shape[-1] % 2:
        raise ValueError(f"bigaccel.{op}: x must be [..., 2*d] = [gate | up] along the last dimension, "
                         f"but it is {x.shape[-1]} (odd), shape {tuple(x.shape)}")


def _check_approximate(approximate: str, op: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"bigaccel.{op}: approximate must be 'none' (erf) or 'tanh', got {approximate!r}")


def silu_and_mul(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """SwiGLU's activation: ``x = [gate | up]`` (``[..., 2d]``) -> ``silu(gate) * up`` (``[..., d]``),
    computed in fp32 with one rounding. ``out`` (contiguous ``[..., d]``, x's dtype) is written
    in place and returned (no autograd through ``out=``)."""
    _check_gated(x, "silu_and_mul")
    return _run_activation("silu_and_mul", x, (), out, (*x.shape[:-1], x.shape[-1] // 2))


def gelu_and_mul(x: torch.Tensor, approximate: str = "none", out: torch.Tensor | None = None) -> torch.Tensor:
    """GeGLU's activation: ``x = [gate | up]`` -> ``gelu(gate, approximate) * up``."""
    _check_gated(x, "gelu_and_mul")
    _check_approximate(approximate, "gelu_and_mul")
    return _run_activation("gelu_and_mul", x, (approximate,), out, (*x.shape[:-1], x.shape[-1] // 2))


def gelu(x: torch.Tensor, approximate: str = "none", out: torch.Tensor | None = None) -> torch.Tensor:
    """GELU as ``torch.nn.functional.gelu`` (approximate "none" = erf, or "tanh"), one rounding."""
    _check_activation(x, "gelu")
    _check_approximate(approximate, "gelu")
    return _run_activation("gelu", x, (approximate,), out, x.shape)


def bias_act(x: torch.Tensor, bias: torch.Tensor, activation: str = "gelu",
             out: torch.Tensor | None = None) -> torch.Tensor:
    """``act(x + bias)`` in one pass, ``bias [K]`` along the last dimension, activation one of
    ``reference.ACTIVATIONS`` ("silu", "gelu", "gelu_tanh"); the sum is not rounded."""
    _check_activation(x, "bias_act")
    if activation not in reference.ACTIVATIONS:
        raise ValueError(f"bigaccel.bias_act: activation must be one of {reference.ACTIVATIONS}, got {activation!r}")
    if not isinstance(bias, torch.Tensor) or bias.dtype != x.dtype:
        raise TypeError(f"bigaccel.bias_act: bias must be a {x.dtype} tensor (x's dtype), got "
                        f"{getattr(bias, 'dtype', type(bias).__name__)}")
    if bias.device != x.device:
        raise ValueError(f"bigaccel.bias_act: x is on {x.device} but bias is on {bias.device}; move both to one device")
    if bias.dim() != 1 or bias.shape[0] != x.shape[-1]:
        raise ValueError(f"bigaccel.bias_act: bias must be [{x.shape[-1]}] (x's last dimension), got {tuple(bias.shape)}")
    return _run_activation("bias_act", x, (bias, activation), out, x.shape)


def bias_gelu(x: torch.Tensor, bias: torch.Tensor, approximate: str = "none",
              out: torch.Tensor | None = None) -> torch.Tensor:
    """``gelu(x + bias, approximate)``: :func:`bias_act` with a GELU."""
    _check_approximate(approximate, "bias_gelu")
    return bias_act(x, bias, "gelu_tanh" if approximate == "tanh" else "gelu", out=out)


def bias_silu(x: torch.Tensor, bias: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``silu(x + bias)``: :func:`bias_act` with a SiLU."""
    return bias_act(x, bias, "silu", out=out)
