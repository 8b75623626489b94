"""Fused activation modules: SiluAndMul, GeluAndMul (gated, x = [gate | up]) and FastGELU."""
from __future__ import annotations

import torch
from torch import nn

from .. import ops

_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class SiluAndMul(nn.Module):
    """``x [..., 2d] = [gate | up] -> silu(gate) * up [..., d]`` in one pass (SwiGLU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.silu_and_mul(x)


class GeluAndMul(nn.Module):
    """``x [..., 2d] = [gate | up] -> gelu(gate, approximate) * up [..., d]`` in one pass (GeGLU)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GeluAndMul: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.gelu_and_mul(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class FastGELU(nn.GELU):
    """Drop-in for ``nn.GELU(approximate=...)``: same argument, same result to within the
    rounding of one fp32 computation, through bigaccel's fused kernel. Inputs the kernels do
    not take (float64, other dtypes) go to ``torch.nn.functional.gelu`` as nn.GELU would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in _KERNEL_DTYPES or x.dim() == 0 or x.numel() == 0:
            return super().forward(x)
        return ops.gelu(x, self.approximate)

    @classmethod
    def from_module(cls, gelu: nn.GELU) -> "FastGELU":
        if not isinstance(gelu, nn.GELU):
            raise TypeError(f"FastGELU.from_module expects an nn.GELU, got {type(gelu).__name__}")
        return cls(approximate=gelu.approximate)
