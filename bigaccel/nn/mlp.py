"""FusedGatedMLP: ``down(act(gate(x)) * up(x))`` with gate and up as one projection.

The gate and up weights are concatenated along the output dimension,
``gate_up_proj.weight = [gate_proj.weight; up_proj.weight]``, so one GEMM produces
``[gate | up]`` and the fused gated activation (silu_and_mul / gelu_and_mul)
reads it once. ``gate_up_proj`` and ``down_proj`` are ordinary submodules: an
nn.Linear after from_module, and anything with the same call signature after
that (e.g. ``bigaccel.nn.Int8Linear.from_linear(mlp.gate_up_proj)``).
"""
from __future__ import annotations

import torch
from torch import nn

from .. import ops

ACTIVATIONS = ("silu", "gelu", "gelu_tanh")

# transformers' activation classes (ACT2FN), recognised by type name so that
# transformers need not be importable. QuickGELU (x * sigmoid(1.702 x)) and
# others are not these functions and are left alone.
_TRANSFORMERS_ACTIVATIONS = {
    "SiLUActivation": "silu",
    "GELUActivation": "gelu",
    "NewGELUActivation": "gelu_tanh",
    "FastGELUActivation": "gelu_tanh",
    "PytorchGELUTanh": "gelu_tanh",
    "GELUTanh": "gelu_tanh",
}


def activation_name(act_fn: nn.Module) -> str | None:
    """"silu", "gelu" or "gelu_tanh" for the activation modules FusedGatedMLP can fuse, else None."""
    if type(act_fn) is nn.SiLU:
        return "silu"
    if type(act_fn) is nn.GELU:
        return "gelu_tanh" if act_fn.approximate == "tanh" else "gelu"
    name = type(act_fn).__name__
    if name == "GELUActivation" and getattr(act_fn, "act", None) not in (None, nn.functional.gelu):
        return None  # transformers' GELUActivation(use_gelu_python=True) is erf-GELU too, but say no to surprises
    return _TRANSFORMERS_ACTIVATIONS.get(name)


def why_not_fusable(mlp: nn.Module) -> str | None:
    """None if FusedGatedMLP.from_module can convert `mlp`, else the reason it cannot."""
    layers = {}
    for attr in ("gate_proj", "up_proj", "down_proj", "act_fn"):
        if not hasattr(mlp, attr):
            return f"{type(mlp).__name__} has no {attr} (a gated MLP has gate_proj, up_proj, down_proj and act_fn)"
        layers[attr] = getattr(mlp, attr)
    gate, up, down = layers["gate_proj"], layers["up_proj"], layers["down_proj"]
    for attr in ("gate_proj", "up_proj", "down_proj"):
        if type(layers[attr]) is not nn.Linear:  # a subclass (LoRA, quantized, ...) may compute something else
            return f"{attr} is a {type(layers[attr]).__name__}, not an nn.Linear"
    if activation_name(layers["act_fn"]) is None:
        return (f"act_fn is a {type(layers['act_fn']).__name__}; only nn.SiLU, nn.GELU and transformers' "
                f"{', '.join(sorted(_TRANSFORMERS_ACTIVATIONS))} are fused")
    if gate.weight.shape != up.weight.shape:
        return f"gate_proj {tuple(gate.weight.shape)} and up_proj {tuple(up.weight.shape)} differ in shape"
    if (gate.bias is None) != (up.bias is None):
        return "gate_proj and up_proj must both have a bias or both have none"
    if down.in_features != gate.out_features:
        return f"down_proj takes {down.in_features} features but gate_proj gives {gate.out_features}"
    if gate.weight.dtype != up.weight.dtype or gate.weight.device != up.weight.device:
        return "gate_proj and up_proj must share dtype and device"
    return None


class FusedGatedMLP(nn.Module):
    """``down_proj(act(gate) * up)`` with ``[gate | up] = gate_up_proj(x)``; act is "silu", "gelu"
    (erf) or "gelu_tanh". Built directly or with :meth:`from_module` from a Llama/Mistral/Qwen2-style MLP."""

    def __init__(self, hidden_size: int, intermediate_size: int, activation: str = "silu", bias: bool = False,
                 down_bias: bool | None = None, device=None, dtype=None):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"FusedGatedMLP: activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.hidden_size, self.intermediate_size, self.activation = hidden_size, intermediate_size, activation
        kw = {"device": device, "dtype": dtype}
        self.gate_up_proj = nn.Linear(hidden_size, 2 * intermediate_size, bias=bias, **kw)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias if down_bias is None else down_bias, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gate_up_proj(x)
        if self.activation == "silu":
            a = ops.silu_and_mul(h)
        else:
            a = ops.gelu_and_mul(h, "tanh" if self.activation == "gelu_tanh" else "none")
        return self.down_proj(a)

    @classmethod
    def from_module(cls, mlp: nn.Module, strict: bool = False) -> "FusedGatedMLP | None":
        """A FusedGatedMLP computing what `mlp` computes, assuming its forward is
        ``down_proj(act_fn(gate_proj(x)) * up_proj(x))`` (the convention of these attribute names in
        transformers' Llama, Mistral, Qwen2, Gemma MLPs). Requires plain nn.Linear projections and a
        SiLU or GELU act_fn (see :func:`why_not_fusable`); otherwise returns None, or raises
        ValueError with the reason when ``strict``. Weights are copied (concatenated), not shared."""
        reason = why_not_fusable(mlp)
        if reason is not None:
            if strict:
                raise ValueError(f"FusedGatedMLP.from_module: cannot fuse: {reason}")
            return None
        gate, up, down = mlp.gate_proj, mlp.up_proj, mlp.down_proj
        fused = cls(gate.in_features, gate.out_features, activation_name(mlp.act_fn), bias=gate.bias is not None,
                    down_bias=down.bias is not None, device=gate.weight.device, dtype=gate.weight.dtype)
        fused.down_proj.to(dtype=down.weight.dtype, device=down.weight.device)
        with torch.no_grad():
            fused.gate_up_proj.weight.copy_(torch.cat([gate.weight, up.weight], dim=0))
            if gate.bias is not None:
                fused.gate_up_proj.bias.copy_(torch.cat([gate.bias, up.bias], dim=0))
            fused.down_proj.weight.copy_(down.weight)
            if down.bias is not None:
                fused.down_proj.bias.copy_(down.bias)
        fused.train(mlp.training)
        return fused

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, intermediate_size={self.intermediate_size}, activation={self.activation!r}"


def fuse_gated_mlps(model: nn.Module) -> list[str]:
    """Replace, in place, every submodule FusedGatedMLP.from_module accepts; returns their names."""
    replaced = []
    for name, module in list(model.named_modules()):
        if not name or why_not_fusable(module) is not None:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FusedGatedMLP.from_module(module))
        replaced.append(name)
    return replaced
